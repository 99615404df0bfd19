"""`GET /v1/estimate`: what a request of a given size costs, by the formula it is charged."""

from __future__ import annotations

from aiohttp import web

from node.errors import BadRequest
from node.http.web import json_response
from node.parts import PARTS
from node.pricing.prices import Usage

routes = web.RouteTableDef()

MAX_TOKENS = 10**12  # far above any context window
MAX_COST_MSAT = 2**63 - 1  # a JSON integer clients (and the ledger) can hold


def _count(request: web.Request, name: str) -> int:
    raw = request.query.get(name, "0")
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_TOKENS:
        raise BadRequest(
            f"{name} must be a whole number of tokens from 0 to {MAX_TOKENS}", param=name
        )
    return value


@routes.get("/v1/estimate")
async def estimate(request: web.Request) -> web.Response:
    parts = request.app[PARTS]
    model = parts.catalogue.get(request.query.get("model"))
    usage = Usage(_count(request, "input_tokens"), _count(request, "output_tokens"))
    cost = parts.pricer.cost_msat(model.price, usage)
    if cost > MAX_COST_MSAT:  # only at the dearest settings, for absurd counts
        larger = (
            "input_tokens" if usage.prompt_tokens >= usage.completion_tokens else "output_tokens"
        )
        raise BadRequest(f"{larger}: too many tokens to price at {model.id}'s price", param=larger)
    return json_response(
        {
            "model": model.id,
            "input_tokens": usage.prompt_tokens,
            "output_tokens": usage.completion_tokens,
            "cost_msat": cost,
            "cost_sat": -(-cost // 1000),
            "pricing": model.price.to_json(),  # USD per token, and `request`: flat per request
        }
    )
