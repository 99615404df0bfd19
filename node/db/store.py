"""The database behind one interface, `Store`: SQLite (embedded, the default) or PostgreSQL.

    node.db.store         Store, the interface; Then; Migrations, Params, IntegrityError
    node.db.sqlite        SqliteStore: one file, one connection, serialized writes
    node.db.postgres      PostgresStore: several node instances on one database
    node.db.open          open_store(url, path, migrations): the one that fits the URL
    node.db.group_commit  the hot path's writes, many requests' in one transaction

Every write runs in a transaction that takes the one write lock up front — SQLite's
`BEGIN IMMEDIATE`, PostgreSQL's transaction-scoped advisory lock — so no two write transactions
interleave, whichever process, node instance, connection or thread runs them. That lock, and
nothing about the event loop, is what makes each transaction atomic: a transaction's
statements all run while it holds the lock, and a reader sees only what was committed.

Where transactions run:
- `transaction()`, `query()`: synchronously, on the caller's thread (the event loop), on the
  store's connection. With SQLite they take microseconds, and the group commit's batches run
  here too. `read()` is the awaitable query of the hot path: with PostgreSQL it runs on
  psycopg's async connections, on the loop without blocking it.
- With PostgreSQL, where each statement is a network round trip, the group commit's batches
  are each sent as one query from the loop (`send`, node.db.pg_batch), or, when a write must
  read an answer as it runs, run on the store's `writer`: threads with a connection each, each
  batch pipelined (one round trip or two in all); either way the loop serves other requests
  meanwhile. A `transaction()` on the loop meanwhile waits for the write lock as it would
  for another instance's transaction. So code outside a transaction must already expect other
  transactions to commit between any two of its statements — it had to with several instances
  anyway — and inside one, nothing else writes.

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
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from typing import Any

from wallet.store import Connection, IntegrityError, Row

Migrations = Mapping[str, Sequence[str]]
Params = Sequence[Any] | Mapping[str, Any]

__all__ = ["IntegrityError", "Migrations", "Params", "Store", "Then"]

Write = Callable[[Connection], Any]
Outcome = tuple[bool, Any]  # a write's: (True, its result) or (False, the exception)


class NotRecordable(BaseException):
    """A batch `send` cannot take (node.db.pg_batch): it is for the `writer` threads. A
    BaseException: a write's own `except Exception` must not take it for a failed
    statement."""


class Then:
    """What a batched write returns when its result needs the answers of statements it sent
    without waiting: `finish(conn)`, run once every write of the batch has sent its
    statements (so a batch waits for the server once, not once per write). In the same
    transaction when `writes` (finish writes more), else possibly after the commit (finish
    only reads its answers: the batch then waits for the server once in all)."""

    def __init__(self, finish: Callable[[Connection], Any], writes: bool = True) -> None:
        self.finish = finish
        self.writes = writes


class Store(ABC):
    """What the ledger, the wallet and the admin use; see the module's docstring."""

    kind: str
    # Where the group commit runs its batches: None for here and now (SQLite), else threads,
    # `writers` of them.
    writer: Executor | None = None
    writers = 1
    # Whether the group commit's batches are first offered to `send` (PostgreSQL).
    sends_batches = False

    # Set by each store: the driver's connection (BEGIN, COMMIT, ROLLBACK, close) and where
    # statements run (for PostgreSQL, an adapter that translates SQLite's dialect).
    _driver: Any
    _sql: Connection

    def __init__(self) -> None:
        self._instance = secrets.token_hex(8)
        self._lock = threading.RLock()  # the store's connection, for one thread at a time
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

    def apply(self, writes: Sequence[Write]) -> list[Any]:
        """Run `writes` in one transaction, in order, then finish those that returned a `Then`;
        their results. On the `writer` when there is one (only the group commit calls this)."""
        with self.transaction() as conn:
            return finish(conn, [write(conn) for write in writes])

    async def send(self, writes: Sequence[Write]) -> list[Outcome]:
        """`apply` from the event loop, without a thread, where the store can (see
        `sends_batches`): each write's outcome once committed. Raises `NotRecordable`,
        having sent nothing, for a batch that must go to the `writer`
        instead; any other exception, if the batch was not committed."""
        raise NotImplementedError

    def query(self, sql: str, params: Params = ()) -> list[Row]:
        with self._lock:
            return self._sql.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Params = ()) -> Row | None:
        with self._lock:
            return self._sql.execute(sql, params).fetchone()

    async def read(self, sql: str, params: Params = ()) -> list[Row]:
        """`query()` for the hot path: off the event loop where a query is a network round
        trip (PostgreSQL: on an async connection of its own), in place where it
        takes microseconds (SQLite). It sees what was committed, as `query()` does."""
        return self.query(sql, params)

    def close(self) -> None:
        with self._lock:
            self._driver.close()

    @abstractmethod
    def instance_alive(self, instance: str) -> bool:
        """Whether the node instance that wrote a row still runs."""

    @abstractmethod
    def try_singleton(self, name: str) -> bool:
        """True if this instance is (now) the only one doing `name`, e.g. announcing."""


def finish(conn: Connection, results: list[Any]) -> list[Any]:
    return [r.finish(conn) if isinstance(r, Then) else r for r in results]
