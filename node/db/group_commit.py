"""Group commit: the short writes of many requests, made durable by one commit.

A request's reservation and settlement are each committed before the request goes on (the
reservation before the upstream call, so that a crash charges its floor; the settlement
before the answer, so that the answer is paid for). Committed one by one they cost a
transaction each, most of it the commit. Here every write asked for while no batch is running
joins one transaction, and each asker resumes once its write is committed: the same guarantee,
at one commit per batch instead of one per write.

Where a batch runs is the store's choice (store.py): with SQLite, here on the event loop, on
the turn after the first write was asked for; with PostgreSQL, on the store's writer threads,
up to `db.writers` batches at once, while the loop goes on serving (the writes asked for
meanwhile form the next batch). Batches at once are still one after the other in the
database, under the write lock: what running two buys is that the second one's statements
wait at the server, not in this process, while the first one commits.

A write is a function of the connection, run inside the batch's transaction (maybe on another
thread). It must touch nothing but the database, because it may run twice: if any write of a
batch raises, the batch is rolled back and each of its writes runs again in a transaction of
its own, so one bad write fails alone (a write may then send its statements otherwise). It
may return a `Then` (store.py) to read its statements' answers after the batch's other writes
have sent theirs. A write, once asked for,
is made even if its asker was cancelled meanwhile (a settlement must not be lost because the
client went away).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from node.db.store import Store, Write
from wallet.store import Connection

T = TypeVar("T")
Outcome = tuple[bool, Any]  # (True, result) or (False, the exception)
Batch = list[tuple[Write, asyncio.Future[Any]]]

log = logging.getLogger("nutgate.store")


class GroupCommit:
    def __init__(self, db: Store) -> None:
        self.db = db
        self._queue: Batch = []
        self._running: dict[Future[list[Outcome]], Batch] = {}  # on the writer threads

    async def run(self, write: Callable[[Connection], T]) -> T:
        """Run `write` in the next batch; its result once the batch is committed."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        self._queue.append((write, done))
        if len(self._queue) == 1 and len(self._running) < self.db.writers:
            loop.call_soon(self._start)
        return await done

    def _start(self) -> None:
        if len(self._running) >= max(1, self.db.writers) or not self._queue:
            return  # a running batch starts the next one when it lands
        batch, self._queue = self._queue, []
        if self.db.writer is None:
            _resolve(batch, self._apply([write for write, _ in batch]))
            return
        loop = asyncio.get_running_loop()
        job = self.db.writer.submit(self._apply, [write for write, _ in batch])
        self._running[job] = batch
        job.add_done_callback(lambda _: loop.call_soon_threadsafe(self._landed, job))

    def _landed(self, job: Future[list[Outcome]]) -> None:
        batch = self._running.pop(job, None)
        if batch is None:
            return  # commit() has resolved it already
        _resolve(batch, job.result())
        self._start()

    def commit(self) -> None:
        """Wait for the running batches, then run and commit every queued write now (at
        shutdown, so that none is dropped)."""
        running, self._running = self._running, {}
        for job, batch in running.items():
            _resolve(batch, job.result())
        batch, self._queue = self._queue, []
        if not batch:
            return
        writes = [write for write, _ in batch]
        if self.db.writer is None:
            _resolve(batch, self._apply(writes))
        else:
            _resolve(batch, self.db.writer.submit(self._apply, writes).result())

    def _apply(self, writes: list[Write]) -> list[Outcome]:
        """The batch in one transaction; if it fails, each write alone. Never raises."""
        try:
            return [(True, result) for result in self.db.apply(writes)]
        except Exception:
            # each alone, even a batch of one: a write may be sent otherwise the second time
            # (a settlement that sent its record before its answer, node.money.ledger_pg)
            log.warning("a batch of %d writes failed; retrying each alone", len(writes))
        outcomes: list[Outcome] = []
        for write in writes:
            try:
                outcomes.append((True, self.db.apply([write])[0]))
            except Exception as exc:
                outcomes.append((False, exc))
        return outcomes


def _resolve(batch: Batch, outcomes: list[Outcome]) -> None:
    for (_, done), (ok, value) in zip(batch, outcomes, strict=True):
        if done.done():  # a cancelled asker has nobody to tell
            continue
        if ok:
            done.set_result(value)
        else:
            done.set_exception(value)
