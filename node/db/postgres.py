"""The PostgreSQL store: several node instances on one database (`[store].url`).

Same interface and semantics as the SQLite store, so the ledger and the wallet run unchanged:

- One connection per process for the loop, in autocommit; `transaction()` is BEGIN + a
  transaction-scoped advisory lock, the one write lock of every instance (what `BEGIN
  IMMEDIATE` is in SQLite). Read Committed then sees, statement by statement, everything
  committed before the lock.
- The group commit's batches (see store.py) as one query each, sent from the loop, up to
  BATCHES at once on async connections of their own (node.db.pg_batch): one round trip
  however many writes a batch holds. A batch that cannot be sent so (a write reads an answer
  as it runs, or its `Then` writes more) runs on one of WRITERS `writer` threads instead,
  with a connection each, as one pipeline — BEGIN, the lock, every write's statements,
  COMMIT — which waits for the server once, or twice when a write's `Then` writes more.
- Up to READERS async connections on the event loop for `read()`, the hot path's queries.
- Each instance holds a session advisory lock named after its `instance` id for as long as its
  connection lives; PostgreSQL drops it when the process dies, which is how another instance
  tells a dead writer's rows (`instance_alive`) without heartbeats.
- The dialect is translated by node.db.pg_dialect; constraint violations are raised as the
  store's `IntegrityError`.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from node.db.pg_batch import BatchSender
from node.db.pg_dialect import ID_TABLE, row_factory, sql_params, translate, translate_ddl
from node.db.store import (
    IntegrityError,
    Migrations,
    Outcome,
    Params,
    Store,
    Then,
    Write,
    finish,
)
from wallet.store import Row

# Advisory locks as (first key, second key): "ng" plus a kind; named locks hash their name.
LOCKS = 0x6E67_0000
WRITE, MIGRATE = 1, 2  # second keys under LOCKS
INSTANCE, SINGLETON = LOCKS + 1, LOCKS + 2  # first keys, with hashtext(name) second
READERS = 4  # async connections for the hot path's awaited reads (AsyncReaders)
WRITERS = 2  # writer threads (and connections), for the group commit's batches
# Batches out at once, each on an async connection of its own: 4 did 5-14 % more requests a
# second than 2 through a 1 ms delay (bench/RESULTS-postgres.md), 8 no more than 4.
BATCHES = 4
LOCK_WRITE = f"SELECT pg_advisory_xact_lock({LOCKS}, {WRITE})".encode()
BEGIN_LOCKED = b"BEGIN; " + LOCK_WRITE


@contextmanager
def _integrity() -> Iterator[None]:
    try:
        yield
    except pg_errors.IntegrityError as exc:
        raise IntegrityError(str(exc).strip()) from exc


class PgCursor:
    """A statement's result. In a pipeline (a group commit's batch) the result arrives later:
    reading it (rowcount, a row, lastrowid) waits for it, so a statement nobody reads costs
    no round trip of its own."""

    def __init__(
        self, cursor: psycopg.Cursor[Any], returning_id: bool, pipeline: psycopg.Pipeline | None
    ) -> None:
        self._cursor = cursor
        self._returning_id = returning_id
        self._pipeline = pipeline
        self._id: int | None = None

    def _arrived(self) -> psycopg.Cursor[Any]:
        pipeline = self._pipeline
        if pipeline is not None and self._cursor.pgresult is None:
            with _integrity():
                pipeline.sync()
        return self._cursor

    @property
    def lastrowid(self) -> int | None:
        if self._returning_id and self._id is None:
            row = self._arrived().fetchone()
            self._id = None if row is None else int(row[0])
        return self._id

    @property
    def rowcount(self) -> int:
        return self._arrived().rowcount

    def fetchone(self) -> Row:
        return None if self._returning_id else self._arrived().fetchone()

    def fetchall(self) -> list[Row]:
        return [] if self._returning_id else self._arrived().fetchall()

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())


class PgConnection:
    """What `transaction()` hands out: sqlite3.Connection's execute/executemany."""

    def __init__(self, conn: psycopg.Connection[Any], id_tables: frozenset[str]) -> None:
        self._conn = self.driver = conn
        self._id_tables = id_tables
        self.pipeline: psycopg.Pipeline | None = None  # set while a batch runs in one

    def execute(self, sql: str, params: Params = (), /) -> PgCursor:
        text, returning = translate(sql, isinstance(params, Mapping), self._id_tables)
        with _integrity():
            cursor = self._conn.execute(text.encode(), sql_params(params))
            return PgCursor(cursor, returning, self.pipeline)

    def executemany(self, sql: str, params: Iterable[Params], /) -> PgCursor:
        rows = list(params)
        named = bool(rows) and isinstance(rows[0], Mapping)
        text, _ = translate(sql.rstrip(), named, frozenset())
        cursor = self._conn.cursor()
        with _integrity():
            cursor.executemany(text.encode(), [sql_params(p) for p in rows])
        return PgCursor(cursor, False, self.pipeline)


@dataclass
class _Reader:
    conn: psycopg.AsyncConnection[Any]
    busy: int = 0


class AsyncReaders:
    """Store.read's connections: psycopg's async ones, on the event loop (no thread to hand
    the query to and back), READERS of them opened at the first read; each read goes to an
    idle one, or else to the least busy (a connection runs one query at a time)."""

    def __init__(self, url: str, id_tables: frozenset[str]) -> None:
        self._url, self._id_tables = url, id_tables
        self._readers: list[_Reader] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Lock | None = None

    async def read(self, sql: str, params: Params) -> list[Row]:
        reader = min(await self._open(), key=lambda r: r.busy)
        reader.busy += 1
        try:
            text, _ = translate(sql, isinstance(params, Mapping), self._id_tables)
            with _integrity():
                cursor = await reader.conn.execute(text.encode(), sql_params(params))
                return await cursor.fetchall()
        finally:
            reader.busy -= 1

    async def _open(self) -> list[_Reader]:
        loop = asyncio.get_running_loop()
        if self._readers and self._loop is loop:
            return self._readers
        if self._loop is not loop:  # connections serve the loop they were made on
            self.close()
            self._loop, self._opening = loop, asyncio.Lock()
        assert self._opening is not None
        async with self._opening:  # many first reads at once open READERS connections in all
            if not self._readers:
                for _ in range(READERS):
                    conn = await psycopg.AsyncConnection.connect(
                        self._url, autocommit=True, row_factory=row_factory
                    )
                    self._readers.append(_Reader(conn))
        return self._readers

    def close(self) -> None:
        for reader in self._readers:
            reader.conn.pgconn.finish()  # no await needed to end a session
        self._readers = []


class PostgresStore(Store):
    kind = "postgres"
    sends_batches = True

    def __init__(self, url: str, migrations: Migrations) -> None:
        super().__init__()
        self.conn: psycopg.Connection[Any] = psycopg.connect(
            url, autocommit=True, row_factory=row_factory
        )
        self._singletons: set[str] = set()
        scripts = [s for series in migrations.values() for s in series]
        self._id_tables = frozenset(t.lower() for s in scripts for t in ID_TABLE.findall(s))
        self._driver = self.conn
        self._sql = PgConnection(self.conn, self._id_tables)
        self.conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (INSTANCE, self.instance))
        self._migrate(migrations)
        self._url = url
        self._writer_conns = [self._connect() for _ in range(WRITERS)]
        self._writers: queue.SimpleQueue[PgConnection] = queue.SimpleQueue()
        for driver in self._writer_conns:
            self._writers.put(PgConnection(driver, self._id_tables))
        self._thread = ThreadPoolExecutor(WRITERS, thread_name_prefix="nutgate-db-writer")
        self.writer, self.writers = self._thread, BATCHES
        self._async = AsyncReaders(url, self._id_tables)
        self._batches = BatchSender(url, self._id_tables, LOCK_WRITE.decode(), BATCHES)

    async def send(self, writes: Sequence[Write]) -> list[Outcome]:
        return await self._batches.send(writes)

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self._url, autocommit=True, row_factory=row_factory)

    async def read(self, sql: str, params: Params = ()) -> list[Row]:
        return await self._async.read(sql, params)

    def apply(self, writes: Sequence[Write]) -> list[Any]:
        """On a writer thread: the batch as one pipeline (see the module's docstring)."""
        sql = self._writers.get()  # as many connections as writer threads: never waits
        try:
            return _pipelined(sql, writes)
        finally:
            self._writers.put(sql)

    def close(self) -> None:
        self._thread.shutdown(wait=True)  # the group commit has flushed its last batch
        self._async.close()
        self._batches.close()
        for driver in self._writer_conns:
            driver.close()
        super().close()

    def _begin(self) -> None:
        try:
            self.conn.execute(BEGIN_LOCKED)  # one round trip: they are most of the cost
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def instance_alive(self, instance: str) -> bool:
        if instance == self.instance:
            return True
        with self._lock:
            row = self.conn.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (INSTANCE, instance)
            ).fetchone()
            if row is None or not row[0]:
                return True  # its session still holds it
            self.conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (INSTANCE, instance))
            return False

    def try_singleton(self, name: str) -> bool:
        if name in self._singletons:
            return True  # session locks stack: take each one once
        with self._lock:
            row = self.conn.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (SINGLETON, name)
            ).fetchone()
        if row is not None and row[0]:
            self._singletons.add(name)
            return True
        return False

    def _migrate(self, migrations: Migrations) -> None:
        # Instances starting together: one migrates, the others wait and find it done.
        self.conn.execute("SELECT pg_advisory_lock(%s, %s)", (LOCKS, MIGRATE))
        try:
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " series TEXT NOT NULL, version BIGINT NOT NULL, PRIMARY KEY (series, version))"
            )
            for series, scripts in migrations.items():
                rows = self.conn.execute(
                    "SELECT version FROM schema_migrations WHERE series = %s", (series,)
                ).fetchall()
                done = {row[0] for row in rows}
                for version, script in enumerate(scripts, start=1):
                    if version not in done:
                        self._apply(series, version, script)
        finally:
            self.conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCKS, MIGRATE))

    def _apply(self, series: str, version: int, script: str) -> None:
        with self.conn.transaction():
            # The write lock first: DDL takes its table locks only between other instances'
            # transactions, never in an order that deadlocks one of them.
            self.conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCKS, WRITE))
            self.conn.execute(translate_ddl(script).encode())
            self.conn.execute(
                "INSERT INTO schema_migrations (series, version) VALUES (%s, %s)",
                (series, version),
            )


def _pipelined(sql: PgConnection, writes: Sequence[Write]) -> list[Any]:
    """BEGIN, the lock, the writes, COMMIT in one pipeline. The server's answers are awaited
    once before COMMIT if a write's `Then` writes more, and once at the end."""
    conn = sql.driver
    try:
        with _integrity(), conn.pipeline() as pipeline:
            sql.pipeline = pipeline
            conn.execute(b"BEGIN")
            conn.execute(LOCK_WRITE)
            results = [write(sql) for write in writes]
            if any(isinstance(r, Then) and r.writes for r in results):
                results = finish(sql, results)
            conn.execute(b"COMMIT")
        return finish(sql, results)  # the answers of writes that only read them
    except BaseException:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.execute(b"ROLLBACK")
        raise
    finally:
        sql.pipeline = None
