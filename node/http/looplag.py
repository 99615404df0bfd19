"""Event-loop lag, for the benches: how late a task that asks to wake every 10 ms wakes.

Opt-in: with `NUTGATE_LOOPLAG=<file>` in the environment the node appends to that file, once a
second, one JSON line `{"t": <wall-clock seconds>, "lag_ms": [<lateness of each wake-up>]}`.
A bench reads the lines that fall in its run and takes the p99 and the maximum. Lateness is
what any request waiting on the loop (a stream's next chunk, a new connection) also waits:
synchronous work such as a database round trip on the loop shows up here in full.
Without the variable nothing runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

ENV = "NUTGATE_LOOPLAG"
INTERVAL_S = 0.010
FLUSH_S = 1.0


async def monitor(path: Path) -> None:
    """Sleep INTERVAL_S at a time and write down how much later than asked each wake-up was."""
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    flushed = loop.time()
    while True:
        asked = loop.time() + INTERVAL_S
        await asyncio.sleep(INTERVAL_S)
        now = loop.time()
        lags.append(round(max(0.0, now - asked) * 1000, 3))
        if now - flushed >= FLUSH_S:
            line = json.dumps({"t": round(time.time(), 3), "lag_ms": lags}) + "\n"
            with path.open("a") as out:  # once a second: a small append, not worth a thread
                out.write(line)
            lags, flushed = [], now


def setup(app: web.Application) -> None:
    """Start the monitor with the app when NUTGATE_LOOPLAG names a file; else do nothing."""
    target = os.environ.get(ENV)
    if not target:
        return

    async def running(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(monitor(Path(target)))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(running)
