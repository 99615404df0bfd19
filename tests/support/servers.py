"""Run an aiohttp application on 127.0.0.1 in a thread of its own, with its own event loop.

Tests then talk to it over real HTTP from any client, sync or async, without sharing a loop.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from typing import Any, Self, TypeVar

from aiohttp import web

from node.dev.procs import free_port
from node.http.server import NodeRunner

T = TypeVar("T")


class ThreadedServer:
    # The mock upstream this server serves, when it serves one (serve_mock, start_mock): each
    # mock class has its own knobs and records, for the tests to read and set.
    mock: Any

    def __init__(
        self,
        make_app: Callable[[], web.Application],
        port: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ):
        self.make_app = make_app
        self.port = port or free_port()
        self.ssl_context = ssl_context
        self.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def start(self) -> Self:
        self._thread.start()
        self.call(self._start())
        return self

    async def _start(self) -> None:
        self.app = self.make_app()
        self._runner = NodeRunner(self.app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.ssl_context)
        await site.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=60)

    def stop(self) -> None:
        if self._runner is not None:
            self.call(self._runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


def serve_mock(mock: Any) -> Iterator[ThreadedServer]:
    """A mock upstream (anything with an `.app`) served for a fixture's life, as `.mock` on
    its server: `yield from serve_mock(MockAnthropic())`."""
    server = ThreadedServer(lambda: mock.app).start()
    server.mock = mock
    yield server
    server.stop()
