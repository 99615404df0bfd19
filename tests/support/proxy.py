"""A real HTTP proxy in front of a mint that can lose answers, for the "answer lost" tests.

    proxy = MintProxy(mint.url)
    await proxy.start()                 # proxy.url forwards everything to the mint
    proxy.swallow = {"/v1/swap"}        # forward those requests, then never answer
    proxy.refuse = True                 # answer 503 to everything without forwarding
    proxy.seen                          # paths requested, in order
    await proxy.stop()

Not a mock: the mint really receives and executes the swallowed requests, which is exactly the
ambiguous case (the mint signed, we never heard) the wallet must recover from.
"""

from __future__ import annotations

import asyncio
from typing import Self

import aiohttp
from aiohttp import web

from node.dev.procs import free_port


class MintProxy:
    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.swallow: set[str] = set()
        self.refuse = False
        self.seen: list[str] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._session = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(request.path)
        if self.refuse:
            return web.json_response({"detail": "down"}, status=503)
        assert self._session is not None
        body = await request.read()
        async with self._session.request(
            request.method,
            self.target + request.path_qs,
            data=body or None,
            headers={"Content-Type": "application/json"} if body else None,
        ) as resp:
            payload, status = await resp.read(), resp.status
        if request.path in self.swallow:
            await asyncio.sleep(3600)  # the mint acted; its answer never reaches the wallet
        return web.Response(body=payload, status=status, content_type="application/json")
