"""Group commit: the short writes of many requests, made durable by one commit.

A request's reservation and settlement are each committed before the request goes on (the
reservation before the upstream call, so that a crash charges its floor; the settlement
before the answer, so that the answer is paid for). Committed one by one they cost a
transaction each, most of it the commit. Here every write asked for while no batch is running
joins one transaction, and each asker resumes once its write is committed: the same guarantee,
at one commit per batch instead of one per write.

Where a batch runs is the store's choice (store.py): with SQLite, here on the event loop, on
the turn after the first write was asked for; with PostgreSQL, sent as one query from the
loop (node.db.pg_batch) or, when it cannot be, on the store's writer threads, up to
`db.writers` batches at once, while the loop goes on serving (the writes asked for
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
from typing import Any, TypeVar

from node.db.store import NotRecordable, Outcome, Store, Write
from wallet.store import Connection

T = TypeVar("T")
Batch = list[tuple[Write, asyncio.Future[Any]]]

log = logging.getLogger("nutgate.store")


class GroupCommit:
    def __init__(self, db: Store) -> None:
        self.db = db
        self._queue: Batch = []
        self._running: dict[asyncio.Future[list[Outcome]], Batch] = {}  # sent, or on a thread

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
        writes = [write for write, _ in batch]
        job: asyncio.Future[list[Outcome]]
        if self.db.sends_batches:
            job = asyncio.ensure_future(self._send(writes))
        elif self.db.writer is None:
            _resolve(batch, self._apply(writes))
            return
        else:
            job = asyncio.wrap_future(self.db.writer.submit(self._apply, writes))
        self._running[job] = batch
        job.add_done_callback(self._landed)

    async def _send(self, writes: list[Write]) -> list[Outcome]:
        """The batch sent from the loop; on the writer threads if it cannot be, or failed."""
        try:
            return await self.db.send(writes)
        except NotRecordable:
            apply = self._apply
        except Exception:
            log.warning("a batch of %d writes failed; retrying each alone", len(writes))
            apply = self._each
        assert self.db.writer is not None
        return await asyncio.wrap_future(self.db.writer.submit(apply, writes))

    def _landed(self, job: asyncio.Future[list[Outcome]]) -> None:
        batch = self._running.pop(job)
        if job.cancelled():  # the loop is being torn down: its askers with it
            for _, done in batch:
                done.cancel()
        else:
            _resolve(batch, job.result())
        self._start()

    async def flush(self) -> None:
        """Wait for the running batches, then run and commit every queued write (at
        shutdown, so that none is dropped)."""
        while self._running or self._queue:
            if self._running:
                await asyncio.wait(list(self._running))
                await asyncio.sleep(0)  # their callbacks: resolved, the next batch started
            else:
                self._start()

    def _apply(self, writes: list[Write]) -> list[Outcome]:
        """The batch in one transaction; if it fails, each write alone. Never raises."""
        try:
            return [(True, result) for result in self.db.apply(writes)]
        except Exception:
            # each alone, even a batch of one: a write may be sent otherwise the second time
            # (a settlement that sent its record before its answer, node.money.ledger_pg)
            log.warning("a batch of %d writes failed; retrying each alone", len(writes))
        return self._each(writes)

    def _each(self, writes: list[Write]) -> list[Outcome]:
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
