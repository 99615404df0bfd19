"""A client's fallback list (OpenRouter's `"models": [...]`): models tried in order, each as
its own metered call, until one answers.

The next model is tried only when the call failed before anything reached the client (the
errors after which the model's own upstreams fail over: `upstream.RETRYABLE`). Each call
reserves, and is settled, on its own — a failed one costs what its upstream may bill (its
floor, or nothing) — under the request's id, so an X-Cashu request's change keeps its name
(its records: the request's id, then `<id>.1`, `<id>.2`, … for the later calls).
A one-shot X-Cashu payment moves on only from a failure that cost nothing: its token pays
one request, and is no longer untouched once charged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from node.errors import BadRequest
from node.money.payments import Payer
from node.pricing.model import Model
from node.proxy import upstream
from node.proxy.call import CallParts, MeteredCall
from node.proxy.meters import Meter

log = logging.getLogger("nutgate.proxy")

MAX_MODELS = 5  # models one request may name: each may be asked once


@dataclass
class Candidate:
    model: Model
    body: dict[str, Any]
    raw: bytes


def model_ids(body: dict[str, Any], model_id: Any = None) -> list[Any]:
    """The model, then the fallbacks of `models` (the field is taken out of the body)."""
    first = model_id if model_id is not None else body.get("model")
    listed = body.pop("models", None)
    if listed is None:
        return [first]
    if not isinstance(listed, list) or not all(isinstance(m, str) and m for m in listed):
        raise BadRequest("models must be an array of model ids", param="models")
    ids = list(dict.fromkeys(([first] if first is not None else []) + listed))
    if not ids or len(ids) > MAX_MODELS:
        raise BadRequest(f"models: from 1 to {MAX_MODELS} model ids", param="models")
    return ids


async def run(
    parts: CallParts, request: web.Request, payer: Payer, meter: Meter, tried: list[Candidate]
) -> web.StreamResponse:
    for number, candidate in enumerate(tried):
        call = MeteredCall(parts, request, payer, candidate.model, meter)
        if number:  # one record per call: the request's id, then id.1, id.2, …
            call.record_id = f"{call.request_id}.{number}"
        try:
            return await call.run(candidate.body, candidate.raw)
        except upstream.RETRYABLE as exc:
            final = number == len(tried) - 1 or isinstance(exc, upstream.AnswerTooLarge)
            if final or (payer.untouched_msat is not None and call.cost_msat):
                raise
            log.warning(
                "request %s: %s failed; trying %s", call.request_id, call.model.id,
                tried[number + 1].model.id,
            )  # fmt: skip
    raise AssertionError("no model to try")
