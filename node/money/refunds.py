"""Refunds on expiry (Routstr's `Refund-LNURL` and `Key-Expiry-Time` headers at key creation):
when the key expires, what it can still withdraw is paid to its Lightning address.

The one owner of `lightning_refunds`, one row per key that asked for it: `due` until paid (or
until it has nothing left), `gave_up` after `MAX_TRIES` failures (the balance stays, the key
can still withdraw it). The payment goes through `Lightning.pay_address` under one fixed
idempotency key per account, so a refund is paid once whatever the retries and restarts.
"""

from __future__ import annotations

import logging
import time

from node.db.store import Store
from node.errors import NodeError
from node.money.ledger import Ledger
from node.money.lightning import Lightning, fee_margin_sat

log = logging.getLogger(__name__)
MAX_TRIES = 5
IDEMPOTENCY = "refund-on-expiry"

MIGRATIONS = [
    """
    CREATE TABLE lightning_refunds (
        account_id INTEGER PRIMARY KEY,
        address TEXT NOT NULL,
        due_at INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('due', 'paid', 'gave_up')),
        tries INTEGER NOT NULL DEFAULT 0,
        amount_sat INTEGER,
        fee_sat INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX lightning_refunds_due ON lightning_refunds(state, due_at);
    """
]


class Refunds:
    def __init__(self, db: Store, ledger: Ledger, lightning: Lightning) -> None:
        self.db, self.ledger, self.lightning = db, ledger, lightning

    def arrange(self, account_id: int, address: str, due_at: int) -> None:
        """Pay the account out to `address` at `due_at` (the first arrangement stands)."""
        now = int(time.time())
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO lightning_refunds (account_id, address, due_at, state, created_at,"
                " updated_at) VALUES (?, ?, ?, 'due', ?, ?) ON CONFLICT (account_id) DO NOTHING",
                (account_id, address, due_at, now, now),
            )

    def state(self, account_id: int) -> str | None:
        row = self.db.query_one(
            "SELECT state FROM lightning_refunds WHERE account_id = ?", (account_id,)
        )
        return None if row is None else str(row["state"])

    async def pay_due(self) -> int:
        """Pay every refund that is due; the number paid."""
        rows = self.db.query(
            "SELECT account_id, address FROM lightning_refunds WHERE state = 'due'"
            " AND due_at <= ? ORDER BY due_at",
            (int(time.time()),),
        )
        paid = 0
        for row in rows:
            paid += await self._pay(int(row["account_id"]), str(row["address"]))
        return paid

    async def _pay(self, account_id: int, address: str) -> int:
        sats = self.ledger.get(account_id).withdrawable_msat // 1000
        reserve = fee_margin_sat(sats)
        if sats - reserve <= 0:
            self._finish(account_id, "paid", 0, 0)  # nothing worth paying out
            return 0
        try:
            melted = await self.lightning.pay_address(
                account_id, address, sats - reserve, IDEMPOTENCY, None
            )
        except NodeError as exc:
            self._failed(account_id, exc)
            return 0
        self._finish(account_id, "paid", melted.amount_sat, melted.fee_sat)
        return 1

    def _failed(self, account_id: int, exc: NodeError) -> None:
        log.warning("refund on expiry of account %d not paid: %s", account_id, exc.message)
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE lightning_refunds SET tries = tries + 1, updated_at = ?,"
                " state = CASE WHEN tries + 1 >= ? THEN 'gave_up' ELSE state END"
                " WHERE account_id = ? AND state = 'due'",  # a paid one stays paid
                (int(time.time()), MAX_TRIES, account_id),
            )

    def _finish(self, account_id: int, state: str, amount_sat: int, fee_sat: int) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE lightning_refunds SET state = ?, amount_sat = ?, fee_sat = ?,"
                " updated_at = ? WHERE account_id = ? AND state = 'due'",
                (state, amount_sat, fee_sat, int(time.time()), account_id),
            )
