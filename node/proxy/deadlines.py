"""First-byte deadlines of the upstream calls under way, on one timer for them all.

`with first_byte(limit_s):` is `async with asyncio.timeout(limit_s):` for a block that awaits
an upstream's first byte: the block's task is cancelled once `limit_s` have passed, and the
cancellation leaves the block as TimeoutError (one that was not the deadline's stays a
cancellation). asyncio.timeout arms and cancels a loop timer per call (uvloop: a libuv timer
object each), ~6 µs of a short request; here a call only enters and leaves a set, and the one
timer is armed for the earliest deadline: calls mostly end long before theirs, so it rarely
fires, and when it does it expires those due and re-arms for the next.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class Deadline:
    """One block's deadline (a sync context manager: no coroutine per enter and exit)."""

    __slots__ = ("cancelling", "due", "expired", "task", "watch")

    def __init__(self, watch: _Watch, due: float, task: asyncio.Task[object]) -> None:
        self.watch, self.due, self.task = watch, due, task
        self.cancelling = task.cancelling()
        self.expired = False

    def __enter__(self) -> Deadline:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.watch.calls.discard(self)
        # as asyncio.timeout's __aexit__: the cancellation it caused is taken back, and leaves
        # as TimeoutError unless another cancellation came too
        expired = self.expired and self.task.uncancel() <= self.cancelling
        if expired and kind is asyncio.CancelledError:
            raise TimeoutError from exc


class _Watch:
    """The deadlines of one event loop, and its timer (armed for the earliest of them)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.calls: set[Deadline] = set()
        self.timer: asyncio.TimerHandle | None = None
        self.timer_due = 0.0

    def add(self, limit_s: float) -> Deadline:
        task = asyncio.current_task(self.loop)
        if task is None:
            raise RuntimeError("a deadline needs a task to cancel")
        deadline = Deadline(self, self.loop.time() + limit_s, task)
        self.calls.add(deadline)
        if self.timer is None or deadline.due < self.timer_due:
            self._arm(deadline.due)
        return deadline

    def _arm(self, due: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer, self.timer_due = self.loop.call_at(due, self._fire), due

    def _fire(self) -> None:
        # what the loop fires for `timer_due` is due, even if the loop's clock reads a little
        # earlier (it fires timers within its resolution), as a timer of its own would be
        now = max(self.loop.time(), self.timer_due)
        self.timer = None
        upcoming = None
        for deadline in list(self.calls):
            if deadline.due <= now:
                self.calls.discard(deadline)
                deadline.expired = True
                deadline.task.cancel()
            elif upcoming is None or deadline.due < upcoming:
                upcoming = deadline.due
        if upcoming is not None:
            self._arm(upcoming)


_watch: _Watch | None = None


def first_byte(limit_s: float) -> Deadline:
    """A deadline `limit_s` from now for the current task's block (see the module's doc)."""
    global _watch
    loop = asyncio.get_running_loop()
    watch = _watch
    if watch is None or watch.loop is not loop:  # one watch for the node's loop (tests: one each)
        watch = _watch = _Watch(loop)
    return watch.add(limit_s)
