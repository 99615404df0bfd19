"""The database: one SQLite connection, serialized writes, numbered migrations.

Every write runs in `transaction()`, which takes the write lock up front (`BEGIN IMMEDIATE`) so
two processes (the node and a `nutgate keys` command) never interleave inside a transaction.
Calls are synchronous and short; on the event loop they cannot interleave either, which is what
makes each transaction atomic with respect to concurrent requests of the same process.

WAL with `synchronous=NORMAL`: a committed transaction survives a crash of the process (the
node's failure model); `durability = "full"` also survives a power cut, at an fsync per commit.

Migrations come in named series (`node`, `wallet`, …), each a list of SQL scripts applied in
order, each in its own transaction, recorded in `schema_migrations`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Migrations = Mapping[str, Sequence[str]]


class Database:
    def __init__(self, path: Path | str, migrations: Migrations, *, durability: str = "normal"):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.execute("PRAGMA busy_timeout=10000")
        self._lock = threading.RLock()  # guards against a stray thread; the loop is the writer
        self._in_txn = False
        self._migrate(migrations)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT; ROLLBACK on any exception. Not re-entrant."""
        with self._lock:
            if self._in_txn:
                raise RuntimeError("nested transaction")
            self._in_txn = True
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self.conn
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise
                self.conn.execute("COMMIT")
            finally:
                self._in_txn = False

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self.conn.execute(sql, params).fetchall()

    def query_one(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self.conn.execute(sql, params).fetchone()
            return row

    def close(self) -> None:
        with self._lock:
            self.conn.close()

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
        # executescript commits anything pending first, then runs the script as written.
        try:
            self.conn.executescript(
                f"BEGIN IMMEDIATE;\n{script}\n;"
                f"INSERT INTO schema_migrations (series, version) VALUES ('{series}', {version});"
                "COMMIT;"
            )
        except sqlite3.Error:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
