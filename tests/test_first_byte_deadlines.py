"""First-byte deadlines (node/proxy/deadlines.py) behave as asyncio.timeout does, on one timer."""

from __future__ import annotations

import asyncio
import time

import pytest

from node.proxy.deadlines import first_byte


async def test_a_block_past_its_deadline_leaves_as_timeout() -> None:
    started = time.perf_counter()
    with pytest.raises(TimeoutError), first_byte(0.05):
        await asyncio.sleep(5)
    assert 0.04 < time.perf_counter() - started < 1.0
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_block_within_its_deadline_is_left_alone() -> None:
    with first_byte(0.05):
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.1)  # the deadline, had it stayed, would have cancelled this


async def test_each_call_gets_its_own_deadline_whatever_the_order() -> None:
    async def waits(limit_s: float) -> float:
        started = time.perf_counter()
        try:
            with first_byte(limit_s):
                await asyncio.sleep(5)
        except TimeoutError:
            return time.perf_counter() - started
        return -1.0

    # a long deadline first, then shorter ones: the timer must be armed again for them
    took = await asyncio.gather(waits(0.6), waits(0.05), waits(0.2), waits(0.05))
    for limit, elapsed in zip((0.6, 0.05, 0.2, 0.05), took, strict=True):
        assert limit - 0.01 < elapsed < limit + 0.3


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    async def waits() -> None:
        with first_byte(5.0):
            await asyncio.sleep(5)

    task = asyncio.create_task(waits())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_deadline_and_a_cancellation_together_stay_a_cancellation() -> None:
    async def waits() -> None:
        with first_byte(0.05):
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                asyncio.current_task().cancel()  # type: ignore[union-attr]
                raise

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(waits())


async def test_a_deadline_outside_a_task_is_refused() -> None:
    loop = asyncio.get_running_loop()
    refused: asyncio.Future[BaseException] = loop.create_future()

    def outside() -> None:  # a callback of the loop: no task to cancel
        try:
            first_byte(1.0)
        except RuntimeError as exc:
            refused.set_result(exc)

    loop.call_soon(outside)
    assert "task" in str(await asyncio.wait_for(refused, 1.0))
