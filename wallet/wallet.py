"""The node's Cashu wallet: `receive` (token -> credit), `send` (debit -> token), `recover`.

Money moves only inside transactions of the node's database, together with the hook calls
(credit / debit / refund) that move the matching account balances. Every output is derived
from the node's seed (NUT-13) with its counter stored before the mint sees it, so whatever the
mint signed can be fetched again (NUT-09) after a crash: `recover()` at start finishes or rolls
back every swap and payout left pending. One asyncio.Lock per mint serializes that mint's
swaps; different mints never wait on each other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from wallet.errors import WalletError
from wallet.foreign import Foreign
from wallet.melts import Melts
from wallet.payout import Payouts
from wallet.receive import Receiver, _pending

log = logging.getLogger(__name__)
CHECKSTATE_BATCH = 100


@dataclass(frozen=True)
class ProofState:
    mint: str
    keyset_id: str
    amount: int
    y: str
    local: str  # unspent | reserved
    remote: str  # UNSPENT | PENDING | SPENT | UNKNOWN (the mint did not say)


class Wallet(Receiver, Payouts, Foreign, Melts):
    async def recover(self) -> None:
        """Finish or roll back every pending swap and payout; a mint that cannot be reached
        keeps its rows for the next call (logged, not raised)."""
        for row in self._db.query("SELECT id, mint, instance FROM wallet_swaps ORDER BY id"):
            if not self._ours_or_orphan(row["instance"]):
                continue  # another live node instance has it in flight
            try:
                async with self._lock(row["mint"]):
                    # read under the lock: a request's retry may have settled it meanwhile
                    now = self._db.query_one("SELECT * FROM wallet_swaps WHERE id = ?", (row[0],))
                    if now is None:
                        continue
                    swap = _pending(now)
                    receipt = await self._resolve_swap(swap)
                log.info(
                    "recovered swap %s: %s", swap.purpose, receipt or "nothing signed, dropped"
                )
            except WalletError as e:
                log.warning("swap %s not recovered yet: %s", row["id"], e)
        pending = (
            "SELECT id, mint, purpose, instance FROM wallet_payouts WHERE state = 'pending'"
            " ORDER BY id"
        )
        for row in self._db.query(pending):
            if not self._ours_or_orphan(row["instance"]):
                continue
            try:
                async with self._lock(row["mint"]):
                    await self._resolve_payout(row["id"])
            except WalletError as e:
                log.warning("payout %s not recovered yet: %s", row["purpose"], e)
        await self.recover_melts()
        for ref in self.open_invoices():
            try:
                await self.settle_invoice(ref)
            except WalletError as e:  # the ref is a client's credential: not logged
                log.warning("an invoice is not settled yet: %s", e)

    def assets_msat(self) -> dict[str, int]:
        """msat of proofs held per mint: unspent, plus those reserved by a pending payout."""
        rows = self._db.query(
            "SELECT mint, SUM(amount) AS total FROM wallet_proofs"
            " WHERE state IN ('unspent', 'reserved') GROUP BY mint"
        )
        return {row["mint"]: int(row["total"]) * 1000 for row in rows}

    def payouts(
        self, purpose_prefix: str, limit: int, *, tokens: bool = False
    ) -> list[dict[str, Any]]:
        """The latest payouts whose purpose starts with `purpose_prefix`, the newest first:
        id, mint, amount_sat, state, fee_sat (the payout's own fee), created_at; with `tokens`,
        also the token of each finished one (money: for its owner's eyes only)."""
        escaped = purpose_prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_")
        token = ", token" if tokens else ""
        rows = self._db.query(
            f"SELECT id, mint, amount_sat, state, fee_sat, created_at{token} FROM wallet_payouts"
            " WHERE purpose LIKE ? ESCAPE '!' ORDER BY id DESC LIMIT ?",
            (escaped + "%", limit),
        )
        return [dict(row) for row in rows]

    async def check_states(self) -> list[ProofState]:
        """NUT-07 state at the mint of every proof held (for the admin audit)."""
        rows = self._db.query(
            "SELECT mint, keyset_id, amount, y, state FROM wallet_proofs"
            " WHERE state IN ('unspent', 'reserved') ORDER BY mint, y"
        )
        remote: dict[str, str] = {}
        by_mint: dict[str, list[str]] = {}
        for row in rows:
            by_mint.setdefault(row["mint"], []).append(row["y"])
        for mint, ys in by_mint.items():
            client = self._client(mint)
            for i in range(0, len(ys), CHECKSTATE_BATCH):
                remote.update(await client.checkstate(ys[i : i + CHECKSTATE_BATCH]))
        return [
            ProofState(
                r["mint"],
                r["keyset_id"],
                r["amount"],
                r["y"],
                r["state"],
                remote.get(r["y"], "UNKNOWN"),
            )
            for r in rows
        ]
