"""A mint that misbehaves on demand: a real HTTP proxy in front of a real Nutshell mint.

faulty = await FaultyMint(mint.url).start()
faulty.hold_before = {"/v1/swap"}     # keep it, never forward it (the mint saw nothing)
faulty.swallow = {"/v1/swap"}         # forward it, never answer (the mint acted)
faulty.delay_s = 5.0                  # answer everything this late
faulty.garbage = {"/v1/swap"}         # answer 200 with bytes that are not the mint's JSON
faulty.refuse = True                  # 503 to everything
faulty.arrived(path)                  # an event set when a request for `path` came in
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from tests.support.proxy import MintProxy


class FaultyMint(MintProxy):
    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.hold_before: set[str] = set()
        self.garbage: set[str] = set()
        self.delay_s = 0.0
        self._arrived: dict[str, asyncio.Event] = {}

    def arrived(self, path: str) -> asyncio.Event:
        return self._arrived.setdefault(path, asyncio.Event())

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.arrived(request.path).set()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if request.path in self.hold_before:
            self.seen.append(request.path)
            await asyncio.sleep(3600)
        if request.path in self.garbage:
            self.seen.append(request.path)
            return web.Response(body=b'{"signatures": [{"amount": "x"', status=200)
        return await super()._handle(request)
