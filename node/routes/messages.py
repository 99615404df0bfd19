"""Anthropic's Messages API: `POST /v1/messages` and `POST /v1/messages/count_tokens`.

The same paid path as the OpenAI endpoints (node/routes/paid.py: one payer, one metered call);
what differs is the meter (MessagesMeter), the wire to each upstream (node/proxy/wires.py:
passed through to an Anthropic upstream, translated for an OpenAI-compatible one) and the error
envelope, which the error middleware writes in Anthropic's shape on these paths. The query
(`?beta=true`, as Claude Code and the SDKs' beta calls send it) changes nothing.

count_tokens is free, and rate-limited like every route: a client whose credential opens an
account gets the count of a model's Anthropic upstream; otherwise (or for an OpenAI-compatible
upstream, which has no such endpoint) the node's own estimate of the prompt, the one it charges
when an answer has no usage.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from node.dialects.messages_check import check_request
from node.errors import NodeError
from node.http import credentials
from node.http.web import json_response, read_json
from node.parts import PARTS
from node.pricing.model import Model
from node.proxy import upstream
from node.proxy.meters import MessagesMeter, estimate_prompt_tokens
from node.routes.paid import metered

routes = web.RouteTableDef()


@routes.post("/v1/messages")
async def messages(request: web.Request) -> web.StreamResponse:
    body, raw = await read_json(request)
    request.app[PARTS].catalogue.get(body.get("model"))  # an unknown model is named first
    check_request(body)
    interleaved = "interleaved-thinking-" in request.headers.get("anthropic-beta", "")
    return await metered(request, MessagesMeter(interleaved), body, raw)


@routes.post("/v1/messages/count_tokens")
async def count_tokens(request: web.Request) -> web.Response:
    body, raw = await read_json(request)
    parts = request.app[PARTS]
    model = parts.catalogue.get(body.get("model"))
    check_request(body, counting=True)
    secret = credentials.credential(request)
    known = secret is not None and credentials.account_by_secret(request, parts.ledger, secret)[1]
    counted = await _upstream_count(request, model, body) if known else None
    if counted is None:
        counted = estimate_prompt_tokens(raw)
    return json_response({"input_tokens": counted})


async def _upstream_count(request: web.Request, model: Model, body: dict[str, Any]) -> int | None:
    """The count of the model's first Anthropic upstream, or None (none, or it failed)."""
    route = next((r for r in model.routes if r.upstream.kind == "anthropic"), None)
    if route is None:
        return None
    sent = {k: v for k, v in body.items() if k in ("messages", "system", "tools", "tool_choice",
                                                   "thinking")}  # fmt: skip
    sent["model"] = route.upstream_model
    passed = {h: v for h in ("anthropic-version", "anthropic-beta")
              if (v := request.headers.get(h, "").strip())}  # fmt: skip
    try:
        answer = await upstream.call(
            request.app[PARTS].http,
            route.upstream,
            "messages/count_tokens",
            orjson.dumps(sent),
            stream=False,
            extra_headers=passed,
        )
    except NodeError:
        return None
    try:
        count = orjson.loads(answer.head).get("input_tokens")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else None
