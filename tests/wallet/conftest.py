"""A wallet on a fresh database per test, with a minimal ledger standing in for the node's hooks.

Every wallet gets a random seed: the mints are shared by the whole session, and two wallets with
the same seed and fresh counters would send the mint the same outputs (refused, 11003).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from node.db.open import open_store
from node.db.sqlite import SqliteStore
from node.db.store import Store
from wallet import MIGRATIONS, InsufficientFunds, Wallet
from wallet.store import Connection

if TYPE_CHECKING:
    from tests.support.pg import Databases

LEDGER_MIGRATIONS = [
    """
    CREATE TABLE t_events (
        id INTEGER PRIMARY KEY, kind TEXT NOT NULL, purpose TEXT NOT NULL,
        amount_msat INTEGER NOT NULL, mint TEXT
    );
    """
]


class Ledger:
    """The node's side of the hooks: an event log written in the wallet's transaction."""

    def __init__(self, db: Store) -> None:
        self.db = db
        self.refuse_debits = False

    def credit(self, conn: Connection, purpose: str, amount_msat: int, mint: str) -> None:
        conn.execute(
            "INSERT INTO t_events (kind, purpose, amount_msat, mint) VALUES ('credit', ?, ?, ?)",
            (purpose, amount_msat, mint),
        )

    def debit(self, conn: Connection, purpose: str, amount_msat: int, fee_msat: int) -> None:
        """Records what the account pays: the payout's amount plus its fee."""
        if self.refuse_debits:
            raise InsufficientFunds("account balance too low")
        conn.execute(
            "INSERT INTO t_events (kind, purpose, amount_msat) VALUES ('debit', ?, ?)",
            (purpose, amount_msat + fee_msat),
        )

    def refund(self, conn: Connection, purpose: str, amount_msat: int) -> None:
        conn.execute(
            "INSERT INTO t_events (kind, purpose, amount_msat) VALUES ('refund', ?, ?)",
            (purpose, amount_msat),
        )

    def events(self, kind: str) -> list[tuple[str, int]]:
        rows = self.db.query(
            "SELECT purpose, amount_msat FROM t_events WHERE kind = ? ORDER BY id", (kind,)
        )
        return [(r["purpose"], r["amount_msat"]) for r in rows]


@dataclass
class Env:
    wallet: Wallet
    ledger: Ledger
    db: Store
    seed: bytes
    path: Path

    def pending_swaps(self) -> int:
        row = self.db.query_one("SELECT COUNT(*) FROM wallet_swaps")
        assert row is not None
        return int(row[0])

    def payouts(self) -> list[Any]:
        return self.db.query("SELECT * FROM wallet_payouts ORDER BY id")


MakeWallet = Callable[..., Env]


def open_db(path: Path) -> SqliteStore:
    return SqliteStore(path, {"wallet": MIGRATIONS, "test": LEDGER_MIGRATIONS})


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def make_wallet(
    tmp_path: Path, http: aiohttp.ClientSession, store_backend: str, pg_databases: Databases
) -> MakeWallet:
    """A wallet on SQLite at `path`, or on a PostgreSQL database standing for that path."""
    urls: dict[Path, str] = {}

    def make(
        *mints: str, path: Path | None = None, seed: bytes | None = None, timeout_s: float = 10.0
    ) -> Env:
        path = path or tmp_path / "db.sqlite3"
        if store_backend == "postgres" and path not in urls:
            urls[path] = pg_databases.new()
        db = open_store(urls.get(path, ""), path, {"wallet": MIGRATIONS, "test": LEDGER_MIGRATIONS})
        ledger = Ledger(db)
        seed = seed or os.urandom(64)
        w = Wallet(
            db,
            seed,
            list(mints),
            http,
            ledger.credit,
            ledger.debit,
            ledger.refund,
            timeout_s=timeout_s,
        )
        return Env(w, ledger, db, seed, path)

    return make
