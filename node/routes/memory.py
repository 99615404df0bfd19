"""Presets with memory (node/proxy/memory.py): the chat that replays and keeps the turns, and
`GET` / `DELETE /v1/memory/{preset}` for the key's holder."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from node.errors import NotFound, Unauthorized
from node.http import credentials
from node.http.web import json_response
from node.parts import PARTS
from node.proxy.memory import RememberingMeter
from node.proxy.meters import Meter

routes = web.RouteTableDef()

Metered = Callable[[web.Request, Meter, dict[str, Any], bytes], Awaitable[web.StreamResponse]]


async def remembered_chat(
    request: web.Request, body: dict[str, Any], metered: Metered
) -> web.StreamResponse | None:
    """A chat with a memory preset, for a key with an account: its past turns go after the
    system messages and before the new ones, and this turn is kept. None: no memory here."""
    parts = request.app[PARTS]
    if "models" in body:
        return None
    preset = parts.catalogue.get(body.get("model")).preset
    if preset is None or not preset.memory_turns:  # most chats: no payer to look at
        return None
    owner = credentials.presented(request, parts.ledger).owner
    if owner is None:
        return None
    system = [m for m in body["messages"] if m.get("role") == "system"]
    said = [m for m in body["messages"] if m.get("role") != "system"]
    past = parts.memory.recall(owner, preset.name)
    body["messages"] = system + past + said
    meter = RememberingMeter()
    response = await metered(request, meter, body, orjson.dumps(body))
    if response.status == 200 and meter.text:
        answer = {"role": "assistant", "content": meter.text}
        parts.memory.remember(owner, preset.name, [*past, *said, answer], preset.memory_turns)
    return response


def _owner(request: web.Request) -> int:
    owner = credentials.presented(request, request.app[PARTS].ledger).owner
    if owner is None:
        raise Unauthorized("send 'Authorization: Bearer sk-…': a memory belongs to a key")
    return owner


def _preset(request: web.Request) -> str:
    name = request.match_info["preset"]
    presets = request.app[PARTS].settings.presets
    if not any(p.name == name and p.memory_turns for p in presets):
        raise NotFound(f"no preset with memory named {name[:80]!r}", code="preset_not_found")
    return name


@routes.get("/v1/memory/{preset}")
async def read_memory(request: web.Request) -> web.Response:
    name, owner = _preset(request), _owner(request)
    turns = request.app[PARTS].memory.recall(owner, name)
    return json_response({"object": "memory", "preset": name, "messages": turns})


@routes.delete("/v1/memory/{preset}")
async def forget_memory(request: web.Request) -> web.Response:
    name, owner = _preset(request), _owner(request)
    forgotten = request.app[PARTS].memory.forget(owner, name)
    return json_response({"object": "memory", "preset": name, "deleted": forgotten})
