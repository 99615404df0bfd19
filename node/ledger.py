"""Accounts, reservations and the append-only entry log, in integer msat.

An account's `balance_msat` is what it owns; `reserved_msat` is the part held for requests in
flight. Every change of a balance writes an entry in the same transaction, so `audit()` can
recompute each balance from the entries alone.

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
from dataclasses import dataclass

from node.errors import PaymentRequired
from node.group_commit import GroupCommit
from node.store import Store
from wallet.store import Connection

MIGRATIONS = [
    """
    CREATE TABLE accounts (
        id INTEGER PRIMARY KEY,
        key_hash TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        balance_msat INTEGER NOT NULL DEFAULT 0 CHECK (balance_msat >= 0),
        reserved_msat INTEGER NOT NULL DEFAULT 0
            CHECK (reserved_msat >= 0 AND reserved_msat <= balance_msat),
        mint TEXT,
        created_at INTEGER NOT NULL,
        last_used_at INTEGER,
        requests INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE reservations (
        id TEXT PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        amount_msat INTEGER NOT NULL CHECK (amount_msat >= 0),
        floor_msat INTEGER NOT NULL CHECK (floor_msat >= 0),
        model TEXT,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX reservations_account ON reservations(account_id);
    CREATE TABLE entries (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        kind TEXT NOT NULL,
        amount_msat INTEGER NOT NULL,
        ref TEXT,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX entries_account ON entries(account_id);
    CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
        BEGIN SELECT RAISE(ABORT, 'entries are append-only'); END;
    CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
        BEGIN SELECT RAISE(ABORT, 'entries are append-only'); END;
    """,
    "ALTER TABLE reservations ADD COLUMN instance TEXT;",
]

# Entry kinds: money in (+) and out (-) of an account.
GRANT = "grant"  # operator-funded key
DEPOSIT = "deposit"  # ecash redeemed into the account
CHARGE = "charge"  # a request's cost
WITHDRAW = "withdraw"  # ecash paid out of the account
REFUND = "refund"  # a withdrawal that failed, returned


def hash_key(secret: str) -> str:
    """Keys and token-keys are stored only as their SHA-256."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Account:
    id: int
    kind: str
    balance_msat: int
    reserved_msat: int
    mint: str | None

    @property
    def available_msat(self) -> int:
        return self.balance_msat - self.reserved_msat

    def untouched(self, credited_msat: int) -> bool:
        """Nothing spent or reserved since the account was credited `credited_msat` (the
        reservation's own write checks the same, see `_UNTOUCHED`)."""
        return not self.reserved_msat and self.balance_msat == credited_msat


@dataclass(frozen=True)
class Mismatch:
    account_id: int
    balance_msat: int
    entries_msat: int


KNOWN_IDS = 100_000  # key hashes whose account id is kept in memory

_UNTOUCHED = " AND reserved_msat = 0 AND balance_msat = :untouched"


def _now() -> int:
    return int(time.time())


class Ledger:
    def __init__(self, db: Store):
        self.db = db
        self.commits = GroupCommit(db)
        self._ids: dict[str, int] = {}  # key hash -> account id

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
            "SELECT id, kind, balance_msat, reserved_msat, mint FROM accounts WHERE key_hash = ?",
            (key_hash,),
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
        row = self.db.query_one(
            "SELECT id, kind, balance_msat, reserved_msat, mint FROM accounts WHERE id = ?",
            (account_id,),
        )
        if row is None:
            raise KeyError(account_id)
        return Account(*row)

    def grant(self, key_hash: str, amount_msat: int, ref: str = "operator") -> int:
        """An operator-funded key: a new account holding `amount_msat`."""
        with self.db.transaction() as conn:
            account_id = self.create_account(conn, key_hash, "key")
            self.credit(conn, account_id, amount_msat, GRANT, ref)
        return account_id

    # --- balance changes inside a caller's transaction ------------------------------------

    def credit(
        self, conn: Connection, account_id: int, amount_msat: int, kind: str, ref: str
    ) -> None:
        if amount_msat < 0:
            raise ValueError("credit must not be negative")
        conn.execute(
            "UPDATE accounts SET balance_msat = balance_msat + ? WHERE id = ?",
            (amount_msat, account_id),
        )
        self._entry(conn, account_id, kind, amount_msat, ref)

    def debit(
        self, conn: Connection, account_id: int, amount_msat: int, kind: str, ref: str
    ) -> None:
        """Take `amount_msat` from the unreserved balance, or raise PaymentRequired."""
        if amount_msat < 0:
            raise ValueError("debit must not be negative")
        cur = conn.execute(
            "UPDATE accounts SET balance_msat = balance_msat - :a"
            " WHERE id = :id AND balance_msat - reserved_msat >= :a",
            {"a": amount_msat, "id": account_id},
        )
        if cur.rowcount != 1:
            raise PaymentRequired("insufficient balance")
        self._entry(conn, account_id, kind, -amount_msat, ref)

    def _entry(
        self, conn: Connection, account_id: int, kind: str, amount_msat: int, ref: str
    ) -> None:
        conn.execute(
            "INSERT INTO entries (account_id, kind, amount_msat, ref, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (account_id, kind, amount_msat, ref, _now()),
        )

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
    ) -> bool:
        """Hold `amount_msat` for a request; False when the available balance is short.

        `untouched_msat`: also False unless the account holds exactly that and nothing is
        reserved from it (a one-shot token's account, used by one request only)."""
        return await self.commits.run(
            lambda conn: self._reserve(
                conn, account_id, reservation_id, amount_msat, floor_msat, model, untouched_msat
            )
        )

    async def settle(self, reservation_id: str, cost_msat: int) -> int:
        """Charge the real cost and release the rest. Returns the msat charged.

        The charge is capped at what the account can pay (this reservation plus its unreserved
        balance), so an account never goes below zero. Settling twice charges once.
        """
        cost = max(0, cost_msat)
        return await self.commits.run(lambda conn: self._settle(conn, reservation_id, cost))

    async def release(self, reservation_id: str) -> None:
        await self.commits.run(lambda conn: self._settle(conn, reservation_id, 0))

    def _reserve(
        self,
        conn: Connection,
        account_id: int,
        reservation_id: str,
        amount_msat: int,
        floor_msat: int,
        model: str | None,
        untouched_msat: int | None,
    ) -> bool:
        now = _now()
        untouched = "" if untouched_msat is None else _UNTOUCHED
        cur = conn.execute(
            "UPDATE accounts SET reserved_msat = reserved_msat + :a,"
            " last_used_at = :now, requests = requests + 1"
            " WHERE id = :id AND balance_msat - reserved_msat >= :a" + untouched,
            {"a": amount_msat, "id": account_id, "now": now, "untouched": untouched_msat},
        )
        if cur.rowcount != 1:
            return False
        conn.execute(
            "INSERT INTO reservations (id, account_id, amount_msat, floor_msat, model,"
            " created_at, instance) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                reservation_id,
                account_id,
                amount_msat,
                min(floor_msat, amount_msat),
                model,
                now,
                self.db.instance,
            ),
        )
        return True

    def _settle(self, conn: Connection, reservation_id: str, cost_msat: int) -> int:
        row = conn.execute(
            "SELECT r.account_id, r.amount_msat, a.balance_msat, a.reserved_msat"
            " FROM reservations r JOIN accounts a ON a.id = r.account_id WHERE r.id = ?",
            (reservation_id,),
        ).fetchone()
        if row is None:
            return 0
        account_id, held, balance, reserved = row
        charged = min(cost_msat, held + balance - reserved)
        conn.execute(
            "UPDATE accounts SET balance_msat = balance_msat - ?, reserved_msat = reserved_msat - ?"
            " WHERE id = ?",
            (charged, held, account_id),
        )
        conn.execute("DELETE FROM reservations WHERE id = ?", (reservation_id,))
        if charged:
            self._entry(conn, account_id, CHARGE, -charged, reservation_id)
        return int(charged)

    def open_reservations(self) -> int:
        row = self.db.query_one("SELECT count(*) FROM reservations")
        return int(row[0]) if row else 0

    def resolve_orphans(self) -> int:
        """Charge the floor of every reservation whose node instance is gone."""
        alive: dict[str, bool] = {}
        rows = [
            row
            for row in self.db.query("SELECT id, floor_msat, instance FROM reservations")
            if not self._held_by_live_instance(row["instance"], alive)
        ]
        if not rows:
            return 0
        with self.db.transaction() as conn:
            for row in rows:
                self._settle(conn, row["id"], row["floor_msat"])
        return len(rows)

    def _held_by_live_instance(self, instance: str | None, alive: dict[str, bool]) -> bool:
        if instance is None:
            return False
        if instance not in alive:
            alive[instance] = self.db.instance_alive(instance)
        return alive[instance]

    # --- audit ----------------------------------------------------------------------------

    def audit(self) -> list[Mismatch]:
        """Recompute every balance from its entries; list the accounts that disagree."""
        rows = self.db.query(
            "SELECT a.id, a.balance_msat, COALESCE(SUM(e.amount_msat), 0) AS total"
            " FROM accounts a LEFT JOIN entries e ON e.account_id = a.id"
            " GROUP BY a.id HAVING a.balance_msat != COALESCE(SUM(e.amount_msat), 0)"
        )
        mismatches = [Mismatch(r["id"], r["balance_msat"], r["total"]) for r in rows]
        held = self.db.query(
            "SELECT a.id, a.reserved_msat, COALESCE(SUM(r.amount_msat), 0) AS held"
            " FROM accounts a LEFT JOIN reservations r ON r.account_id = a.id"
            " GROUP BY a.id HAVING a.reserved_msat != COALESCE(SUM(r.amount_msat), 0)"
        )
        mismatches += [Mismatch(r["id"], r["reserved_msat"], r["held"]) for r in held]
        return mismatches

    def liabilities_msat(self) -> int:
        row = self.db.query_one("SELECT COALESCE(SUM(balance_msat), 0) FROM accounts")
        return int(row[0]) if row else 0
