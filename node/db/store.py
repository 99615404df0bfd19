"""The database behind one interface, `Store`: SQLite (embedded, the default) or PostgreSQL.

Every write runs in `transaction()`, which takes the one write lock up front — SQLite's
`BEGIN IMMEDIATE`, PostgreSQL's transaction-scoped advisory lock — so no two transactions
interleave, whichever process or node instance runs them. Calls are synchronous and short; on
the event loop they cannot interleave either, which is what makes each transaction atomic with
respect to concurrent requests of the same process.

Rows written for work in flight (reservations, pending swaps and payouts) carry the `instance`
that wrote them. Another instance takes them over only once `instance_alive()` says their
writer is gone: with SQLite only one node runs on a database, so every other instance is a dead
one; PostgreSQL asks for the lock each live instance holds on its session (see store_pg).

SQLite: WAL with `synchronous=NORMAL`: a committed transaction survives a crash of the process
(the node's failure model); `durability = "full"` also survives a power cut, at an fsync per
commit.

Migrations come in named series (`node`, `wallet`, …), each a list of SQL scripts applied in
order, each in its own transaction, recorded in `schema_migrations`. The scripts are written
for SQLite; the PostgreSQL store translates them.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from wallet.store import Connection, IntegrityError, Row

Migrations = Mapping[str, Sequence[str]]
Params = Sequence[Any] | Mapping[str, Any]

__all__ = ["Database", "IntegrityError", "Store", "open_store"]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class Store(ABC):
    """What the ledger, the wallet and the admin use; see the module's docstring."""

    kind: str

    # Set by each store: the driver's connection (BEGIN, COMMIT, ROLLBACK, close) and where
    # statements run (for PostgreSQL, an adapter that translates SQLite's dialect).
    _driver: Any
    _sql: Connection

    def __init__(self) -> None:
        self._instance = secrets.token_hex(8)
        self._lock = threading.RLock()  # guards against a stray thread; the loop is the writer
        self._in_txn = False

    @property
    def instance(self) -> str:
        return self._instance

    @abstractmethod
    def _begin(self) -> None:
        """Open a transaction holding the one write lock."""

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """BEGIN + the write lock … COMMIT; ROLLBACK on any exception. Not re-entrant."""
        with self._lock:
            if self._in_txn:
                raise RuntimeError("nested transaction")
            self._in_txn = True
            try:
                self._begin()
                try:
                    yield self._sql
                except BaseException:
                    self._driver.execute("ROLLBACK")
                    raise
                self._driver.execute("COMMIT")
            finally:
                self._in_txn = False

    def query(self, sql: str, params: Params = ()) -> list[Row]:
        with self._lock:
            return self._sql.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Params = ()) -> Row | None:
        with self._lock:
            return self._sql.execute(sql, params).fetchone()

    def close(self) -> None:
        with self._lock:
            self._driver.close()

    @abstractmethod
    def instance_alive(self, instance: str) -> bool:
        """Whether the node instance that wrote a row still runs."""

    @abstractmethod
    def try_singleton(self, name: str) -> bool:
        """True if this instance is (now) the only one doing `name`, e.g. announcing."""


def open_store(
    url: str, path: Path, migrations: Migrations, *, durability: str = "normal"
) -> Store:
    """PostgreSQL for a postgresql:// URL; otherwise SQLite at `path`."""
    if url.startswith(POSTGRES_SCHEMES):
        from node.db.postgres import PostgresDatabase  # psycopg is loaded only when used

        return PostgresDatabase(url, migrations)
    return Database(path, migrations, durability=durability)


class Database(Store):
    """SQLite: one connection, serialized writes."""

    kind = "sqlite"

    def __init__(self, path: Path | str, migrations: Migrations, *, durability: str = "normal"):
        super().__init__()
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.execute("PRAGMA busy_timeout=10000")
        self._driver = self._sql = self.conn
        self._migrate(migrations)

    def _begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def instance_alive(self, instance: str) -> bool:
        return instance == self.instance  # one node per SQLite file: any other one has died

    def try_singleton(self, name: str) -> bool:
        return True

    def _migrate(self, migrations: Migrations) -> None:
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " series TEXT NOT NULL, version INTEGER NOT NULL,"
            " PRIMARY KEY (series, version))"
        )
        for series, scripts in migrations.items():
            done = {
                row[0]
                for row in self.conn.execute(
                    "SELECT version FROM schema_migrations WHERE series = ?", (series,)
                )
            }
            for version, script in enumerate(scripts, start=1):
                if version not in done:
                    self._apply(series, version, script)

    def _apply(self, series: str, version: int, script: str) -> None:
        # executescript commits anything pending first, then runs the script as written. The
        # version is recorded first, under the write lock: a process that read "not applied"
        # while another was applying it fails on that key, before any DDL, and finds it done.
        try:
            self.conn.executescript(
                "BEGIN IMMEDIATE;\n"
                f"INSERT INTO schema_migrations (series, version) VALUES ('{series}', {version});"
                f"\n{script}\n;COMMIT;"
            )
        except sqlite3.Error:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if not self.conn.execute(
                "SELECT 1 FROM schema_migrations WHERE series = ? AND version = ?",
                (series, version),
            ).fetchone():
                raise
