"""The wallet's tables (series "wallet" in the node's database) and the database protocol.

The node owns the database and passes in an object with `transaction()`, `query()` and
`query_one()` (see `Database`); the wallet's writes run inside `transaction()` so the node's
credit/debit hooks commit or roll back together with the proofs they are backed by.

Tables:
- wallet_keysets  each mint's keysets (fee, unit, keys) and the NUT-13 counter of each keyset.
- wallet_proofs   proofs held: unspent | reserved (inputs of a pending payout) | spent.
- wallet_swaps    receives sent to the mint whose answer is not stored yet (recover() finishes).
- wallet_credits  one row per credited purpose: a purpose is never credited twice.
- wallet_payouts  sends: pending | done (with the token) | failed (refunded); `fee_sat` is the
                  mint's fee on our swap, debited with the amount (`debit_msat`).
- wallet_invoices bolt11 mint quotes (NUT-04/23) the node asked for: unpaid | minting (outputs
                  allocated, the mint asked to sign) | issued (credited) | expired.
- wallet_melts    invoices paid by melting proofs (NUT-05/08): pending | paid | failed
                  (refunded); inputs are reserved with `wallet_proofs.melt_id`.
- wallet_secrets  what node instances sharing the database share: the seed, the Nostr key
                  (the first instance to start stores its own).

Pending swaps and payouts keep the `instance` that began them: another instance of the node
finishes them only once that one is gone (`Database.instance_alive`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

# Both stores raise this for a broken constraint.
IntegrityError = sqlite3.IntegrityError

# A row as both stores give it: by name (row["x"]), by position (row[0]), unpacked, dict(row).
Row = Any
Params = Sequence[Any] | Mapping[str, Any]


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    @property
    def lastrowid(self) -> int | None: ...

    def fetchone(self) -> Row: ...

    def fetchall(self) -> list[Row]: ...

    def __iter__(self) -> Iterator[Row]: ...


class Connection(Protocol):
    """What a transaction hands out: sqlite3's connection, or the PostgreSQL store's adapter."""

    def execute(self, sql: str, params: Params = ..., /) -> Cursor: ...

    def executemany(self, sql: str, params: Iterable[Params], /) -> Cursor: ...


class Database(Protocol):
    def transaction(self) -> AbstractContextManager[Connection]: ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    def instance_alive(self, instance: str) -> bool:
        """Whether the node instance that wrote a pending row still runs (see node.db.store)."""
        ...

    @property
    def instance(self) -> str:
        """This process's instance id, kept with the rows it has in flight."""
        ...


MIGRATIONS: list[str] = [
    """
    CREATE TABLE wallet_keysets (
        id TEXT PRIMARY KEY,
        mint TEXT NOT NULL,
        unit TEXT NOT NULL,
        active INTEGER NOT NULL,
        input_fee_ppk INTEGER NOT NULL DEFAULT 0,
        keys TEXT,
        counter INTEGER NOT NULL DEFAULT 0 CHECK (counter >= 0)
    );
    CREATE INDEX wallet_keysets_mint ON wallet_keysets(mint);
    CREATE TABLE wallet_proofs (
        y TEXT PRIMARY KEY,
        secret TEXT NOT NULL UNIQUE,
        mint TEXT NOT NULL,
        keyset_id TEXT NOT NULL,
        amount INTEGER NOT NULL CHECK (amount > 0),
        c TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('unspent', 'reserved', 'spent')),
        payout_id INTEGER,
        origin TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX wallet_proofs_mint_state ON wallet_proofs(mint, state);
    CREATE INDEX wallet_proofs_payout ON wallet_proofs(payout_id);
    CREATE TABLE wallet_swaps (
        id INTEGER PRIMARY KEY,
        purpose TEXT NOT NULL UNIQUE,
        mint TEXT NOT NULL,
        keyset_id TEXT NOT NULL,
        counter_start INTEGER NOT NULL,
        amounts TEXT NOT NULL,
        input_ys TEXT NOT NULL,
        amount_msat INTEGER NOT NULL,
        fee_msat INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE wallet_credits (
        purpose TEXT PRIMARY KEY,
        amount_msat INTEGER NOT NULL,
        fee_msat INTEGER NOT NULL,
        mint TEXT NOT NULL,
        unit TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE wallet_payouts (
        id INTEGER PRIMARY KEY,
        purpose TEXT NOT NULL,
        mint TEXT NOT NULL,
        amount_sat INTEGER NOT NULL CHECK (amount_sat > 0),
        state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
        token TEXT,
        v3 INTEGER NOT NULL DEFAULT 0,
        keyset_id TEXT,
        counter_start INTEGER,
        send_amounts TEXT NOT NULL DEFAULT '[]',
        change_amounts TEXT NOT NULL DEFAULT '[]',
        fee_sat INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    -- a failed (refunded) payout may be retried under the same purpose
    CREATE UNIQUE INDEX wallet_payouts_purpose ON wallet_payouts(purpose) WHERE state != 'failed';
    """,
    """
    ALTER TABLE wallet_swaps ADD COLUMN instance TEXT;
    ALTER TABLE wallet_payouts ADD COLUMN instance TEXT;
    CREATE TABLE wallet_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # what the debit hook took for a payout (amount + fee_sat), refunded if it fails
    "ALTER TABLE wallet_payouts ADD COLUMN debit_msat INTEGER;",
    """
    CREATE TABLE wallet_invoices (
        id INTEGER PRIMARY KEY,
        ref TEXT NOT NULL UNIQUE,
        purpose TEXT NOT NULL UNIQUE,
        mint TEXT NOT NULL,
        quote TEXT NOT NULL,
        request TEXT NOT NULL,
        payment_hash TEXT NOT NULL,
        amount_sat INTEGER NOT NULL CHECK (amount_sat > 0),
        expires_at INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('unpaid', 'minting', 'issued', 'expired')),
        keyset_id TEXT,
        counter_start INTEGER,
        amounts TEXT,
        paid_at INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        instance TEXT
    );
    CREATE INDEX wallet_invoices_state ON wallet_invoices(state);
    CREATE INDEX wallet_invoices_request ON wallet_invoices(request);
    CREATE TABLE wallet_melts (
        id INTEGER PRIMARY KEY,
        purpose TEXT NOT NULL,
        mint TEXT NOT NULL,
        quote TEXT NOT NULL,
        request TEXT NOT NULL,
        amount_sat INTEGER NOT NULL CHECK (amount_sat > 0),
        fee_reserve_sat INTEGER NOT NULL,
        input_fee_sat INTEGER NOT NULL,
        inputs_sat INTEGER NOT NULL,
        debit_msat INTEGER NOT NULL,
        keyset_id TEXT NOT NULL,
        counter_start INTEGER NOT NULL,
        blanks INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'paid', 'failed')),
        fee_paid_sat INTEGER,
        preimage TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        instance TEXT
    );
    CREATE UNIQUE INDEX wallet_melts_purpose ON wallet_melts(purpose) WHERE state != 'failed';
    ALTER TABLE wallet_proofs ADD COLUMN melt_id INTEGER;
    """,
    # the proof's NUT-12 DLEQ ("e s r", hex), handed on in the tokens paid out
    "ALTER TABLE wallet_proofs ADD COLUMN dleq TEXT;",
]


def allocate_counter(conn: Connection, keyset_id: str, n: int) -> int:
    """Reserve n NUT-13 counters of a keyset; returns the first. Runs inside a transaction."""
    row = conn.execute(
        "UPDATE wallet_keysets SET counter = counter + ? WHERE id = ? RETURNING counter",
        (n, keyset_id),
    ).fetchone()
    if row is None:
        raise LookupError(f"unknown keyset {keyset_id}")
    return int(row[0]) - n


def unspent_msat(conn: Connection) -> int:
    """msat of the proofs held unspent (not those a payout in flight reserved), inside the
    caller's transaction: what the node's earnings cap counts as its assets."""
    row = conn.execute(
        "SELECT COALESCE(SUM(amount), 0) * 1000 FROM wallet_proofs WHERE state = 'unspent'"
    ).fetchone()
    return int(row[0])


def shared_secret(db: Database, name: str, candidate: str) -> str:
    """The value stored under `name`, storing `candidate` if there is none: the first wins."""
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO wallet_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
            (name, candidate),
        )
        row = conn.execute("SELECT value FROM wallet_secrets WHERE name = ?", (name,)).fetchone()
    return str(row["value"])
