"""Fake BTC exchanges on 127.0.0.1, each answering in one real exchange's ticker shape.

Each can misbehave on demand: answer slowly, answer garbage, fail with a 500, or be down
(a port nobody listens on). They run on the test's own event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from node.dev.procs import free_port


def _kraken(price: str) -> Any:
    return {"error": [], "result": {"XXBTZUSD": {"a": [price, "1", "1.0"], "c": [price, "0.01"]}}}


def _bitfinex(price: str) -> Any:
    last = float(price)
    return [last - 1, 1.5, last + 1, 2.5, 10.0, 0.0001, last, 1234.5, last + 50, last - 50]


SHAPES: dict[str, Callable[[str], Any]] = {
    "kraken": _kraken,
    "coinbase": lambda p: {"data": {"amount": p, "base": "BTC", "currency": "USD"}},
    "bitstamp": lambda p: {"last": p, "high": "1", "low": "1", "timestamp": "1700000000"},
    "bitfinex": _bitfinex,
    "mempool": lambda p: {"time": 1700000000, "USD": int(float(p)), "EUR": 1},
    "price": lambda p: {"symbol": "BTCUSDT", "price": p},
}


def down_url(shape: str = "price") -> str:
    """A source whose exchange is down: nothing listens on the port."""
    return f"http://127.0.0.1:{free_port()}/ticker#{shape}"


class FakeExchange:
    """behaviour: "ok", "slow" (answers after `delay` s), "garbage", "error" (HTTP 500)."""

    def __init__(self, shape: str = "price", price: str = "100000", behaviour: str = "ok"):
        self.shape, self.price, self.behaviour = shape, price, behaviour
        self.delay = 5.0
        self.hits = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _ticker(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        if self.behaviour == "slow":
            await asyncio.sleep(self.delay)
        if self.behaviour == "garbage":
            return web.Response(text="<html>502 Bad Gateway</html>", content_type="text/html")
        if self.behaviour == "error":
            return web.json_response({"error": "down for maintenance"}, status=500)
        return web.Response(
            text=json.dumps(SHAPES[self.shape](self.price)), content_type="application/json"
        )

    async def start(self) -> FakeExchange:
        app = web.Application()
        app.router.add_get("/ticker", self._ticker)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        # The fragment names the shape: the host (127.0.0.1) cannot.
        self.url = f"http://127.0.0.1:{port}/ticker#{self.shape}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
