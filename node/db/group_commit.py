"""Group commit: the short writes of many requests, made durable by one commit.

A request's reservation and settlement are each committed before the request goes on (the
reservation before the upstream call, so that a crash charges its floor; the settlement
before the answer, so that the answer is paid for). Committed one by one they cost a
transaction each, most of it the commit. Here every write asked for in one turn of the event
loop joins one transaction, committed on the next turn, and each asker resumes once its write
is committed: the same guarantee, at one commit per batch instead of one per write.

A write is a function of the connection, run inside the batch's transaction. It must touch
nothing but the database, because it may run twice: if any write of a batch raises, the batch
is rolled back and each of its writes runs again in a transaction of its own, so one bad
write fails alone. A write, once asked for, is made even if its asker was cancelled meanwhile
(a settlement must not be lost because the client went away).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from node.db.store import Store
from wallet.store import Connection

T = TypeVar("T")
Write = Callable[[Connection], Any]

log = logging.getLogger("nutgate.store")


class GroupCommit:
    def __init__(self, db: Store) -> None:
        self.db = db
        self._queue: list[tuple[Write, asyncio.Future[Any]]] = []

    async def run(self, write: Callable[[Connection], T]) -> T:
        """Run `write` in the next batch; its result once the batch is committed."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        self._queue.append((write, done))
        if len(self._queue) == 1:
            loop.call_soon(self.commit)
        return await done

    def commit(self) -> None:
        """Run and commit every queued write now (also at shutdown, so none is dropped)."""
        batch, self._queue = self._queue, []
        if not batch:
            return
        try:
            with self.db.transaction() as conn:
                results = [write(conn) for write, _ in batch]
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch[0][1], exc)
                return
            log.warning("a batch of %d writes failed; retrying each alone", len(batch))
            for item in batch:
                self._alone(*item)
            return
        for (_, done), result in zip(batch, results, strict=True):
            if not done.done():
                done.set_result(result)

    def _alone(self, write: Write, done: asyncio.Future[Any]) -> None:
        try:
            with self.db.transaction() as conn:
                result = write(conn)
        except Exception as exc:
            _fail(done, exc)
            return
        if not done.done():
            done.set_result(result)


def _fail(done: asyncio.Future[Any], exc: Exception) -> None:
    if not done.done():  # a cancelled asker has nobody to tell
        done.set_exception(exc)
