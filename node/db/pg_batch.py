"""A group commit's batch as one query, sent from the event loop (PostgreSQL).

Each write of the batch runs against a `Recorder`, which takes its statements down instead of
running them. The batch then goes to the server as one simple query: BEGIN; the write lock;
each statement as an EXECUTE of a statement prepared once per connection, its values written
as literals; COMMIT. That is one round trip and no thread: the loop goes on serving while the
query is out. Prepared, because a statement sent as text with its values in it is planned
afresh each time, which doubled the server's time per batch; the writer threads' pipeline
(node.db.postgres) reuses its plans too.

The server reads a query message whole before it runs any of it, so it never holds the write
lock while the rest of a batch is still on its way: a `transaction()` that blocks the loop
meanwhile waits for this batch's commit, never the other way round (a pipeline of separate
messages on the loop could deadlock so).

A write whose statements cannot be taken down raises `NotRecordable` (it reads an answer as it
runs, its `Then` writes more, or it sends a value written here as no literal); so does every
write when the server's settings make literals unsafe. The group commit then runs the batch
on the writer threads instead.
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import psycopg

from node.db.pg_dialect import row_factory, translate
from node.db.store import NotRecordable, Outcome, Params, Then, Write
from wallet.store import Row

Statement = tuple[str, Sequence[Any], "Recorded"]  # prepared text, its values, its answer

MAX_PREPARED = 200  # statements prepared on one connection before it forgets them all
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|%%")


class Committed(Exception):
    """The batch was committed, but its answers could not be read (its cause says why)."""


class Recorded:
    """A statement's answer, as `PgCursor` gives it, once the batch has been sent."""

    def __init__(self, returning_id: bool) -> None:
        self._returning_id = returning_id
        self._rows: list[Row] | None = None
        self._rowcount = -1
        self._next = 0

    def arrive(self, rows: list[Row], rowcount: int) -> None:
        if self._rows is None:
            self._rows, self._rowcount = list(rows), rowcount
        else:  # executemany: one answer per row sent
            self._rows.extend(rows)
            self._rowcount += rowcount

    def _arrived(self) -> list[Row]:
        if self._rows is None:
            raise NotRecordable("a write read an answer before its batch was sent")
        return self._rows

    @property
    def lastrowid(self) -> int | None:
        rows = self._arrived()
        return int(rows[0][0]) if self._returning_id and rows else None

    @property
    def rowcount(self) -> int:
        self._arrived()
        return self._rowcount

    def fetchone(self) -> Row:
        rows = self._arrived()
        if self._returning_id or self._next >= len(rows):
            return None
        self._next += 1
        return rows[self._next - 1]

    def fetchall(self) -> list[Row]:
        rows = self._arrived()
        if self._returning_id:
            return []
        rest, self._next = rows[self._next :], len(rows)
        return rest

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())


class Recorder:
    """The connection a write is given: its statements are taken down, with their values."""

    def __init__(self, id_tables: frozenset[str]) -> None:
        self._id_tables = id_tables
        self.statements: list[Statement] = []
        self.sent = False

    def execute(self, sql: str, params: Params = (), /) -> Recorded:
        if self.sent:
            raise RuntimeError("a statement after its batch was committed")
        text, returning = translate(sql, isinstance(params, Mapping), self._id_tables)
        cursor = Recorded(returning)
        self._take(text, params, cursor)
        return cursor

    def executemany(self, sql: str, params: Iterable[Params], /) -> Recorded:
        if self.sent:
            raise RuntimeError("a statement after its batch was committed")
        rows = list(params)
        named = bool(rows) and isinstance(rows[0], Mapping)
        text, _ = translate(sql.rstrip(), named, frozenset())
        cursor = Recorded(False)
        if not rows:
            cursor.arrive([], 0)
        for row in rows:
            self._take(text, row, cursor)
        return cursor

    def _take(self, text: str, params: Params, cursor: Recorded) -> None:
        prepared, names = positional(text)  # a bool is written as 0 or 1 by literal()
        if isinstance(params, Mapping):
            values: Sequence[Any] = [params[name] for name in names]
        else:
            values = params
            if len(values) != len(names):
                raise NotRecordable("parameters do not match the statement")
        self.statements.append((prepared, values, cursor))


@functools.lru_cache(maxsize=512)
def positional(text: str) -> tuple[str, tuple[str, ...]]:
    """psycopg's text (`%(name)s`, `%s`, `%%`) as a statement to PREPARE (`$1`, …, `%`), and
    the names of its parameters in order (positional ones named by their place)."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match[0] == "%%":
            return "%"
        if match[1] is None:  # positional: each one its own
            names.append(str(len(names)))
            return f"${len(names)}"
        if match[1] not in names:
            names.append(match[1])
        return f"${names.index(match[1]) + 1}"

    return _PLACEHOLDER.sub(number, text), tuple(names)


def literal(value: Any) -> str:
    """`value` as SQL, for a connection with standard_conforming_strings on (checked when
    the connection is opened): inside '…' only a quote is special, and doubled."""
    if value is None:
        return "NULL"
    if isinstance(value, int):  # bool too: 0 or 1
        return str(int(value))
    if isinstance(value, str):
        if "\x00" in value:
            raise NotRecordable("NUL in a text value")  # the server's own error, on a thread
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    raise NotRecordable(f"no literal here for a {type(value).__name__}")


class _Connection:
    """One of the sender's connections: a batch at a time, its prepared statements."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], lock: str) -> None:
        self.conn = conn
        self.lock = lock
        self.prepared: dict[str, str] = {}  # statement -> its name on this connection
        self.busy = False

    def query(self, statements: Sequence[Statement]) -> tuple[str, list[Recorded | None]]:
        """The batch's text, and whose answer each of its statements' is (None: BEGIN, …)."""
        args = [", ".join([literal(value) for value in values]) for _, values, _ in statements]
        parts: list[str] = ["BEGIN", self.lock]
        slots: list[Recorded | None] = [None, None]
        if len(self.prepared) > MAX_PREPARED:  # a bound, should some statement's text vary
            parts.append("DEALLOCATE ALL")
            slots.append(None)
            self.prepared.clear()
        for (text, _, cursor), values in zip(statements, args, strict=True):
            name = self.prepared.get(text)
            if name is None:
                name = self.prepared[text] = f"ng_{len(self.prepared)}"
                parts.append(f"PREPARE {name} AS {text}")
                slots.append(None)
            parts.append(f"EXECUTE {name}({values})" if values else f"EXECUTE {name}")
            slots.append(cursor)
        parts.append("COMMIT")
        slots.append(None)
        return ";\n".join(parts), slots

    async def send(self, statements: Sequence[Statement]) -> None:
        """The batch, committed, each statement's answer handed to its `Recorded`. Raises
        only if it was not committed (or the connection was lost: then no one knows)."""
        text, slots = self.query(statements)
        cursor = self.conn.cursor()
        try:
            await cursor.execute(text.encode())  # no parameters: one simple query
        except BaseException:
            self.prepared.clear()  # which of them the server kept is not known
            if not self.conn.closed:
                await self._reset()
            raise
        try:
            for slot in slots:
                if slot is not None:
                    rows = await cursor.fetchall() if cursor.description else []
                    slot.arrive(rows, cursor.rowcount)
                cursor.nextset()
        except Exception as exc:  # committed: it must not be run again
            raise Committed from exc

    async def _reset(self) -> None:
        try:
            if self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                await self.conn.execute(b"ROLLBACK")
            await self.conn.execute(b"DEALLOCATE ALL")
        except BaseException:
            self.conn.pgconn.finish()  # opened again at the next batch
            raise


class BatchSender:
    """The group commit's batches as one query each, on up to `size` async connections of
    their own, opened at the first batch on the loop that sends it."""

    def __init__(self, url: str, id_tables: frozenset[str], lock: str, size: int) -> None:
        self._url, self._id_tables, self._size = url, id_tables, size
        self._lock = lock  # the statement that takes the write lock
        self._conns: list[_Connection] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsafe = False  # the server's settings make literals unsafe: threads only

    async def send(self, writes: Sequence[Write]) -> list[Outcome]:
        """Run `writes` in one transaction and commit it; their outcomes. `NotRecordable`
        before anything was sent when this batch is for the writer threads; any other
        exception: it was not committed (or the connection was lost)."""
        if self._unsafe:
            raise NotRecordable("standard_conforming_strings is off, or not UTF-8")
        recorder = Recorder(self._id_tables)
        results = [write(recorder) for write in writes]
        if any(isinstance(r, Then) and r.writes for r in results):
            raise NotRecordable("a write's Then writes more in the transaction")
        conn = await self._take()
        try:
            await conn.send(recorder.statements)
        except Committed as exc:
            return [(False, exc.__cause__)] * len(writes)
        finally:
            conn.busy = False
        recorder.sent = True  # from here a statement is a bug, not a batch for the threads
        return [_finished(recorder, result) for result in results]

    async def _take(self) -> _Connection:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # connections serve the loop they were made on
            self.close()
            self._loop = loop
        self._conns = [c for c in self._conns if not c.conn.closed]
        for conn in self._conns:
            if not conn.busy:
                conn.busy = True
                return conn
        if len(self._conns) >= self._size:
            raise NotRecordable("every connection has a batch out")  # the group commit's bound
        made = await psycopg.AsyncConnection.connect(
            self._url, autocommit=True, row_factory=row_factory
        )
        if not _literals_safe(made):
            await made.close()
            self._unsafe = True
            raise NotRecordable("standard_conforming_strings is off, or not UTF-8")
        conn = _Connection(made, self._lock)
        conn.busy = True
        self._conns.append(conn)
        return conn

    def close(self) -> None:
        for conn in self._conns:
            conn.conn.pgconn.finish()  # no await needed to end a session
        self._conns = []


def _finished(recorder: Recorder, result: Any) -> Outcome:
    """A write's outcome once its batch was committed: what its `Then` reads, or why not."""
    try:
        return True, result.finish(recorder) if isinstance(result, Then) else result
    except Exception as exc:
        return False, exc


def _literals_safe(conn: psycopg.AsyncConnection[Any]) -> bool:
    info = conn.info
    return info.parameter_status("standard_conforming_strings") == "on" and info.encoding == "utf-8"
