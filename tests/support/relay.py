"""Relays on 127.0.0.1 for the Nostr tests.

`RelayHandle` runs nostr-sdk's LocalRelay (a real relay: it checks signatures and keeps only
the newest addressable event). `PermissiveRelay` is a tiny websocket relay that stores and
serves whatever it is sent, unchecked: the way to put forged or superseded events in front of
a client honestly, over the wire. `raw_req` reads a relay with a plain websocket, so tests
can check what a relay holds without going through the code under test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from nostr_sdk import LocalRelayBuilder

from node.dev.procs import free_port


class RelayHandle:
    """nostr-sdk's LocalRelay on a fixed port, startable later (for "relay down at start")."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self._relay: Any = None

    async def start(self) -> RelayHandle:
        for _ in range(50):  # after stop() the port is freed a moment later
            relay = LocalRelayBuilder().addr("127.0.0.1").port(self.port).build()
            try:
                await relay.run()
            except Exception as exc:
                if "in use" not in str(exc):
                    raise
                await asyncio.sleep(0.1)
                continue
            self._relay = relay
            return self
        raise RuntimeError(f"port {self.port} stayed busy")

    def stop(self) -> None:
        if self._relay is not None:
            self._relay.shutdown()
            self._relay = None


class PermissiveRelay:
    """Serves every stored event to every REQ (filters ignored), then EOSE. Checks nothing."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self._runner: web.AppRunner | None = None

    async def start(self) -> PermissiveRelay:
        app = web.Application()
        app.router.add_get("/", self._serve)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            message = json.loads(msg.data)
            if message[0] == "EVENT":
                self.events.append(message[1])
                await ws.send_json(["OK", message[1].get("id", ""), True, ""])
            elif message[0] == "REQ":
                for event in self.events:
                    await ws.send_json(["EVENT", message[1], event])
                await ws.send_json(["EOSE", message[1]])
        return ws


async def raw_req(url: str, query: dict[str, Any], timeout: float = 5.0) -> list[dict[str, Any]]:
    """The events a relay returns for one filter, read over a plain websocket."""
    events: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_json(["REQ", "t", query])
        async with asyncio.timeout(timeout):
            while True:
                message = json.loads((await ws.receive()).data)
                if message[0] == "EVENT":
                    events.append(message[2])
                elif message[0] in ("EOSE", "CLOSED"):
                    return events


async def raw_send(url: str, event: dict[str, Any]) -> list[Any]:
    """Send one event as-is; returns the relay's OK message."""
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_json(["EVENT", event])
        async with asyncio.timeout(5):
            return list(json.loads((await ws.receive()).data))


@pytest.fixture
async def local_relay() -> AsyncIterator[RelayHandle]:
    relay = await RelayHandle().start()
    yield relay
    relay.stop()


@pytest.fixture
async def permissive_relay() -> AsyncIterator[PermissiveRelay]:
    relay = await PermissiveRelay().start()
    yield relay
    await relay.stop()
