"""Accounts, reservations and the append-only entry log, in integer msat.

An account's `balance_msat` is what it owns; `reserved_msat` is the part held for requests in
flight; `credit_msat` the part the operator granted (GRANT): charges take it first and it is
never paid out, so a payout may take at most `balance - max(reserved, credit)` and the node
owes its clients `balance - credit` (`liabilities_msat`). Every change of a balance writes an
entry in the same transaction, so `audit()` can recompute each balance from the entries alone.

Reservations are rows: a request reserves its maximum cost, then `settle` charges the real cost
(never more than the account can pay) and releases the rest, or `release` returns it all.
A reservation whose process died (found at start, and every 30 s, by `resolve_orphans`) is
charged its `floor_msat` — the cost of the prompt, which had been sent upstream — and the rest
released: neither free inference nor a charge for output nobody may have received. Each
reservation names the node instance that holds it, so with several instances on one database
only those of an instance that is gone count as orphans.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence

from node.db.group_commit import GroupCommit
from node.db.store import Store
from node.errors import PaymentRequired
from node.money import ledger_pg
from node.money import ledger_sql as sql
from node.money.accounts import Account, Cap, Mismatch, Orphan
from node.money.idempotency import key_mismatch
from node.money.ledger_pg import Also
from node.money.ledger_reports import LedgerReports, spent_sql
from node.money.ledger_schema import (
    CHARGE,
    DEPOSIT,
    GRANT,
    MIGRATIONS,
    PAYOUT_FEE,
    REFUND,
    WITHDRAW,
)
from wallet.store import Connection

__all__ = [
    "CHARGE",
    "DEPOSIT",
    "GRANT",
    "MIGRATIONS",
    "PAYOUT_FEE",
    "REFUND",
    "WITHDRAW",
    "Account",
    "Cap",
    "Ledger",
    "Mismatch",
    "Orphan",
    "hash_key",
]


def hash_key(secret: str) -> str:
    """Keys and token-keys are stored only as their SHA-256."""
    return hashlib.sha256(secret.encode()).hexdigest()


KNOWN_IDS = 100_000  # key hashes whose account id is kept in memory

# a reservation's account, id, amount, floor, model and untouched balance
_Reserve = tuple[int, str, int, int, str | None, int | None]


def _now() -> int:
    return int(time.time())


def _recorder(record: Callable[[Connection, Orphan, int], None], orphan: Orphan) -> Also:
    return lambda conn, charged: record(conn, orphan, charged)


class Ledger(LedgerReports):
    """The ledger's writes and the reads the money path needs; the reports (audit, totals,
    pages, series) are inherited from LedgerReports."""

    def __init__(self, db: Store):
        self.db = db
        self.commits = GroupCommit(db)
        self._ids: dict[str, int] = {}  # key hash -> account id
        # The keys found to have no rules, which node.money.keys then answers from memory; a
        # reservation for one checks in its own write that it still has none (rules may come
        # from another node instance, or from the CLI's process), and if it may have some
        # now, `recheck(key, model)` reads them: the caps to reserve within, or it raises the
        # key's refusal.
        self.ruleless: set[int] = set()
        self.recheck: Callable[[int, str | None], Awaitable[Sequence[Cap]]] | None = None

    # --- accounts -------------------------------------------------------------------------

    def create_account(
        self, conn: Connection, key_hash: str, kind: str, mint: str | None = None
    ) -> int:
        cur = conn.execute(
            "INSERT INTO accounts (key_hash, kind, mint, created_at) VALUES (?, ?, ?, ?)",
            (key_hash, kind, mint, _now()),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def find(self, key_hash: str) -> Account | None:
        row = self.db.query_one(
            f"SELECT {sql.ACCOUNT} FROM accounts WHERE key_hash = ?", (key_hash,)
        )
        return Account(**dict(row)) if row else None

    def account_id(self, key_hash: str) -> int | None:
        """The id of the account a key hash opens. Remembered once found: accounts are never
        deleted nor re-keyed, so the answer cannot change (whichever instance made it)."""
        account_id = self._ids.get(key_hash)
        if account_id is None:
            row = self.db.query_one("SELECT id FROM accounts WHERE key_hash = ?", (key_hash,))
            if row is None:
                return None
            if len(self._ids) >= KNOWN_IDS:
                self._ids.clear()  # a bound on memory; the busy keys come back at once
            account_id = self._ids[key_hash] = int(row[0])
        return account_id

    def get(self, account_id: int) -> Account:
        row = self.db.query_one(f"SELECT {sql.ACCOUNT} FROM accounts WHERE id = ?", (account_id,))
        if row is None:
            raise KeyError(account_id)
        return Account(*row)

    def grant(self, key_hash: str, amount_msat: int, ref: str = "operator") -> int:
        """An operator-funded key: a new account holding `amount_msat`."""
        with self.db.transaction() as conn:
            account_id = self.create_account(conn, key_hash, "key")
            self.credit(conn, account_id, amount_msat, GRANT, ref)
        return account_id

    def fund(self, account_id: int, amount_msat: int, ref: str) -> bool:
        """Operator credit (spend-only) for an account, once per `ref`: False if already given,
        a 422 if `ref` gave another amount."""
        with self.db.transaction() as conn:
            given = "SELECT amount_msat FROM entries WHERE account_id = ? AND kind = ? AND ref = ?"
            row = conn.execute(given, (account_id, GRANT, ref)).fetchone()
            if row is not None:
                if row["amount_msat"] != amount_msat:
                    raise key_mismatch("amount")
                return False
            self.credit(conn, account_id, amount_msat, GRANT, ref)
        return True

    # --- balance changes inside a caller's transaction ------------------------------------

    def credit(
        self, conn: Connection, account_id: int, amount_msat: int, kind: str, ref: str
    ) -> None:
        """Add to the balance; a GRANT is operator credit as well (spend-only)."""
        if amount_msat < 0:
            raise ValueError("credit must not be negative")
        conn.execute(
            "UPDATE accounts SET balance_msat = balance_msat + :a, credit_msat = credit_msat + :c"
            " WHERE id = :id",
            {"a": amount_msat, "c": amount_msat if kind == GRANT else 0, "id": account_id},
        )
        self._entry(conn, account_id, kind, amount_msat, ref)

    def debit(
        self,
        conn: Connection,
        account_id: int,
        amount_msat: int,
        kind: str,
        ref: str,
        fee_msat: int = 0,
    ) -> None:
        """Take `amount_msat` and `fee_msat` (a payout's mint fee, entered apart) from what the
        account may withdraw; else raise Account.refusal (402, or 403 for operator credit)."""
        if amount_msat < 0 or fee_msat < 0:
            raise ValueError("debit must not be negative")
        cur = conn.execute(
            "UPDATE accounts SET balance_msat = balance_msat - :a"
            f" WHERE id = :id AND {sql.WITHDRAWABLE} >= :a",
            {"a": amount_msat + fee_msat, "id": account_id},
        )
        if cur.rowcount != 1:
            row = conn.execute(f"SELECT {sql.ACCOUNT} FROM accounts WHERE id = ?", (account_id,))
            account = row.fetchone()
            if account is None:
                raise KeyError(account_id)
            raise Account(*account).refusal(amount_msat, fee_msat) or PaymentRequired(
                "insufficient balance"
            )
        self._entry(conn, account_id, kind, -amount_msat, ref)
        if fee_msat:
            self._entry(conn, account_id, PAYOUT_FEE, -fee_msat, ref)

    def _entry(
        self,
        conn: Connection,
        account_id: int,
        kind: str,
        amount_msat: int,
        ref: str,
        key_id: int | None = None,
    ) -> None:
        conn.execute(sql.ENTRY, (account_id, kind, amount_msat, ref, _now(), key_id))

    # --- reservations ---------------------------------------------------------------------

    # A request's reservation and settlement are committed together with other requests'
    # writes (one commit per turn of the event loop, see group_commit), each durable before
    # its caller resumes.

    async def reserve(
        self,
        account_id: int,
        reservation_id: str,
        amount_msat: int,
        floor_msat: int = 0,
        model: str | None = None,
        untouched_msat: int | None = None,
        key_id: int | None = None,
        caps: Sequence[Cap] = (),
    ) -> bool:
        """Hold `amount_msat` for a request; False when the available balance is short.

        `untouched_msat`: also False unless the account holds exactly that and nothing is
        reserved from it (a one-shot token's account, used by one request only).
        `key_id`: the key the request came with; `caps`: also False when a key's spending
        since `cap.since`, held and charged, would pass `cap.limit_msat` (checked in the
        reservation's own write, so concurrent requests cannot overshoot it)."""
        args = (account_id, reservation_id, amount_msat, floor_msat, model, untouched_msat)
        if caps:
            return await self.commits.run(
                lambda conn: (
                    all(self._capped(conn, cap, amount_msat) for cap in caps)
                    and self._reserve(conn, *args, key_id)
                )
            )
        ruleless = key_id == account_id and key_id in self.ruleless
        if await self._hold(args, key_id, ruleless):
            return True
        if not ruleless or self.recheck is None:
            return False
        # short of balance, or the key has rules now: again, within its caps if any
        self.ruleless.discard(account_id)
        caps = await self.recheck(account_id, model)
        if not caps:
            return await self._hold(args, key_id, False)
        if not await self.reserve(*args, key_id, caps):
            # not False: the caller would try again without the caps it does not know of
            raise PaymentRequired(
                "insufficient balance, or this key's spending limit is reached",
                code="key_limit_reached",
            )
        return True

    async def _hold(self, args: _Reserve, key_id: int | None, ruleless: bool) -> bool:
        """A reservation without caps: one statement on PostgreSQL, the same effects."""
        if self.db.kind == "postgres":
            write = ledger_pg.reserve(*args, key_id, self.db.instance, ruleless)
            return bool(await self.commits.run(write))
        return await self.commits.run(lambda conn: self._reserve(conn, *args, key_id, ruleless))

    def _capped(self, conn: Connection, cap: Cap, amount_msat: int) -> bool:
        row = conn.execute(*spent_sql(cap)).fetchone()
        return bool(int(row[0]) + amount_msat <= cap.limit_msat)

    async def settle(self, reservation_id: str, cost_msat: int, also: Also | None = None) -> int:
        """Charge the real cost and release the rest. Returns the msat charged.

        The charge is capped at what the account can pay (this reservation plus its unreserved
        balance), so an account never goes below zero. Settling twice charges once. `also`
        runs in the same transaction, told the charge, only when the reservation was there.
        """
        cost = max(0, cost_msat)
        if self.db.kind == "postgres":  # one statement (ledger_pg), the same effects
            return int(await self.commits.run(ledger_pg.settle(reservation_id, cost, also)))
        return await self.commits.run(lambda conn: self._settle(conn, reservation_id, cost, also))

    async def release(self, reservation_id: str, also: Also | None = None) -> None:
        await self.settle(reservation_id, 0, also)

    def _reserve(
        self,
        conn: Connection,
        account_id: int,
        reservation_id: str,
        amount_msat: int,
        floor_msat: int,
        model: str | None,
        untouched_msat: int | None,
        key_id: int | None = None,
        ruleless: bool = False,
    ) -> bool:
        now = _now()
        cur = conn.execute(
            sql.HOLD[untouched_msat is not None, ruleless],
            {
                "a": amount_msat,
                "id": account_id,
                "now": now,
                "untouched": untouched_msat,
                "rid": reservation_id,
                "key": key_id,
            },
        )
        if cur.rowcount != 1:
            return False
        if key_id is not None and key_id != account_id:  # a sub-key's use, counted on it
            conn.execute(sql.USED, (now, key_id))
        floor = min(floor_msat, amount_msat)
        instance = self.db.instance
        row = (reservation_id, account_id, amount_msat, floor, model, now, instance, key_id)
        conn.execute(sql.RESERVATION, row)
        return True

    def _settle(
        self, conn: Connection, reservation_id: str, cost_msat: int, also: Also | None = None
    ) -> int:
        row = conn.execute(sql.TAKE, (reservation_id,)).fetchone()
        if row is None:
            return 0
        account_id, held, key_id = row
        # at most what the account can pay: the held amount, then its unreserved balance
        # (never below 0: reserved <= balance), read only when the cost passes the former
        charged = cost_msat
        if cost_msat > held:
            available = conn.execute(sql.AVAILABLE, (account_id,)).fetchone()[0]
            charged = min(cost_msat, held + available)
        conn.execute(sql.CHARGE, {"c": charged, "h": held, "id": account_id})
        if charged:
            self._entry(conn, account_id, CHARGE, -charged, reservation_id, key_id)
        if also is not None:
            also(conn, int(charged))
        return int(charged)

    def resolve_orphans(
        self, record: Callable[[Connection, Orphan, int], None] | None = None
    ) -> int:
        """Charge the floor of every reservation whose node instance is gone; `record` writes,
        in the same transaction, what each one was charged."""
        alive: dict[str, bool] = {}
        rows = [
            row
            for row in self.db.query(
                "SELECT id, floor_msat, instance, account_id, key_id, model, created_at"
                " FROM reservations"
            )
            if not self._held_by_live_instance(row["instance"], alive)
        ]
        if not rows:
            return 0
        with self.db.transaction() as conn:
            for row in rows:
                orphan = Orphan(
                    row["id"], row["account_id"], row["key_id"], row["model"], row["created_at"]
                )
                also = None if record is None else _recorder(record, orphan)
                self._settle(conn, row["id"], row["floor_msat"], also)
        return len(rows)

    def _held_by_live_instance(self, instance: str | None, alive: dict[str, bool]) -> bool:
        if instance is None:
            return False
        if instance not in alive:
            alive[instance] = self.db.instance_alive(instance)
        return alive[instance]

    # --- one-shot accounts (X-Cashu) ------------------------------------------------------

    def remember_key(
        self, account_id: int, untouched_msat: int, key_hash: str, request_id: str
    ) -> None:
        """The Idempotency-Key a request paying with an untouched one-shot account came with
        (the request that wins the reservation then names itself, see `_reserve`)."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE accounts SET idempotency_key = :k, request_id = :rid WHERE id = :id"
                + ledger_pg.UNTOUCHED,
                {"k": key_hash, "rid": request_id, "id": account_id, "untouched": untouched_msat},
            )
