"""The database behind one interface, `Store`: SQLite (embedded, the default) or PostgreSQL.

    node.db.store      Store, the interface; Migrations, Params, IntegrityError
    node.db.sqlite     SqliteStore: one file, one connection, serialized writes
    node.db.postgres   PostgresStore: several node instances on one database
    node.db.open       open_store(url, path, migrations): the one that fits the URL

Every write runs in `transaction()`, which takes the one write lock up front — SQLite's
`BEGIN IMMEDIATE`, PostgreSQL's transaction-scoped advisory lock — so no two transactions
interleave, whichever process or node instance runs them. Calls are synchronous and short; on
the event loop they cannot interleave either, which is what makes each transaction atomic with
respect to concurrent requests of the same process.

Rows written for work in flight (reservations, pending swaps and payouts) carry the `instance`
that wrote them. Another instance takes them over only once `instance_alive()` says their
writer is gone: with SQLite only one node runs on a database, so every other instance is a dead
one; PostgreSQL asks for the lock each live instance holds on its session (see postgres.py).

Migrations come in named series (`node`, `wallet`, …), each a list of SQL scripts applied in
order, each in its own transaction, recorded in `schema_migrations`. The scripts are written
for SQLite; the PostgreSQL store translates them.
"""

from __future__ import annotations

import secrets
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from wallet.store import Connection, IntegrityError, Row

Migrations = Mapping[str, Sequence[str]]
Params = Sequence[Any] | Mapping[str, Any]

__all__ = ["IntegrityError", "Migrations", "Params", "Store"]


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
