"""Event-loop lag, for the benches: how late a task that asks to wake every 10 ms wakes.

Off unless BENCH_LOOP_LAG_FILE names a file (bench/streams.py sets it). Then a task sleeps
10 ms at a time and, once a second, appends to that file one JSON line: the monotonic time,
and how many wake-ups were how late in whole tenths of a millisecond (`{"3": 90, "12": 1}`:
90 wake-ups 0.3 ms late, one 1.2 ms late). A reader sums the lines of a time window for its
maximum and percentiles. Every open stream waits on this loop: its lag is their added delay.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

ENV = "BENCH_LOOP_LAG_FILE"
TICK_S = 0.010
REPORT_S = 1.0


async def _watch(path: Path) -> None:
    late: Counter[int] = Counter()
    reported = time.monotonic()
    while True:
        asked = time.monotonic() + TICK_S
        await asyncio.sleep(TICK_S)
        now = time.monotonic()
        late[max(0, int((now - asked) * 10_000))] += 1
        if now - reported >= REPORT_S:
            line = json.dumps({"t": now, "late_tenth_ms": late}) + "\n"
            with path.open("a") as out:  # a few hundred bytes a second: the loop barely notices
                out.write(line)
            late, reported = Counter(), now


async def monitor(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context: the watch runs while the app does, when the environment asks."""
    target = os.environ.get(ENV)
    task = asyncio.create_task(_watch(Path(target))) if target else None
    yield
    if task is not None:
        task.cancel()
