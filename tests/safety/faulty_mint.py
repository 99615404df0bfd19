"""A mint that misbehaves on demand: a real HTTP proxy in front of a real Nutshell mint.

faulty = await FaultyMint(mint.url).start()
faulty.hold_before = {"/v1/swap"}     # keep it, never forward it (the mint saw nothing)
faulty.swallow = {"/v1/swap"}         # forward it, never answer (the mint acted)
faulty.delay_s = 5.0                  # answer everything this late
faulty.garbage = {"/v1/swap"}         # answer 200 with bytes that are not the mint's JSON
faulty.garble_after = {"/v1/swap"}    # forward it (the mint acted), answer 200 with junk
faulty.drop_signature = {"/v1/swap"}  # forward it, answer with one signature fewer
faulty.late = {"/v1/swap": 2.0}       # forward it, answer this many seconds late
faulty.skip = 1                       # let this many faulty-path requests through untouched
faulty.refuse = True                  # 503 to everything
await faulty.down(); await faulty.up()  # nothing listening (connection refused), and back
faulty.arrived(path)                  # an event set when a request for `path` came in
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from tests.support.proxy import MintProxy


class FaultyMint(MintProxy):
    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.hold_before: set[str] = set()
        self.garbage: set[str] = set()
        self.delay_s = 0.0
        self.garble_after: set[str] = set()
        self.drop_signature: set[str] = set()
        self.late: dict[str, float] = {}
        self.skip = 0
        self._arrived: dict[str, asyncio.Event] = {}

    async def down(self) -> None:
        await self.stop()

    async def up(self) -> None:
        await self.start()

    def clear(self) -> None:
        self.hold_before, self.garbage, self.swallow = set(), set(), set()
        self.garble_after, self.drop_signature, self.late = set(), set(), {}
        self.refuse, self.skip = False, 0

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
        after = self.garble_after | self.drop_signature | set(self.late)
        if request.path in after and self.skip > 0:
            self.skip -= 1
            return await super()._handle(request)
        response = await super()._handle(request)
        assert isinstance(response, web.Response) and isinstance(response.body, bytes)
        if request.path in self.late:
            await asyncio.sleep(self.late[request.path])
        if request.path in self.garble_after:
            return web.Response(body=b"<html>502 Bad Gateway</html>", status=200)
        if request.path in self.drop_signature and response.status == 200:
            answer = json.loads(response.body)
            answer["signatures"] = answer["signatures"][:-1]
            return web.json_response(answer)
        return response
