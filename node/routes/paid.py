"""A paid request, whatever its endpoint: the models to ask, the payer, the metered calls."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from aiohttp import web

from node.errors import NodeError, NotServed, PaymentRequired, TokenRejected
from node.http import credentials
from node.parts import PARTS, Parts
from node.pricing import presets
from node.pricing.model import Model, Route
from node.pricing.prices import Pricer
from node.proxy import fallback, router, stored, wires
from node.proxy.meters import UNLIMITED_MSAT, Meter


async def metered(
    request: web.Request, meter: Meter, body: dict[str, Any], raw: bytes, model_id: Any = None
) -> web.StreamResponse:
    parts = request.app[PARTS]
    used = parts.metered()  # one price for the quote, the reservation and the settlement
    tried = _candidates(parts, used.pricer, meter, body, raw, model_id)

    def quote() -> int:  # the most this request can cost, whatever the balance
        return max(
            meter.plan(used.pricer, c.model, dict(c.body), c.raw, UNLIMITED_MSAT).max_cost_msat
            for c in tried
        )

    def affords(face_msat: int) -> None:  # an X-Cashu token's face value, before redeeming it
        first = tried[0]  # the one asked first: the token must pay for it
        try:
            meter.plan(used.pricer, first.model, dict(first.body), first.raw, face_msat)
        except PaymentRequired as short:
            plan = meter.plan(used.pricer, first.model, dict(first.body), first.raw, UNLIMITED_MSAT)
            least = plan.floor_msat
            if face_msat < least:  # NUT-24: an insufficient token is a 400, left untouched
                raise TokenRejected(
                    f"the token is worth {face_msat // 1000} sat, less than the {least} msat "
                    "this request costs at the least; it was not redeemed",
                    code="insufficient_token",
                ) from None
            # enough for some answer, not for this one: what it needs, as a payment request
            raise parts.payments.payment_request(quote()) from short

    paying = credentials.presented(request, parts.ledger)
    stored.refuse_foreign(used.stored, paying.owner, body, meter.path)  # before any redeeming
    payer = await parts.payments.resolve(paying, quote, affords)
    try:
        return await fallback.run(used, request, payer, meter, tried)
    except NodeError as exc:  # an X-Cashu payer gets what is left back as change
        if exc.code == "token_spent":  # the account is another request's, with the token
            raise
        back = await payer.finish()
        if exc.status == 402 and back:  # a 402's X-Cashu is a payment request, never a token
            raise TokenRejected(
                f"{exc.message}; the token's value is back in the X-Cashu header",
                code="insufficient_token",
                headers={**exc.headers, **back},
            ) from exc
        exc.headers.update(back)
        raise


def _candidates(
    parts: Parts, pricer: Pricer, meter: Meter, body: dict[str, Any], raw: bytes, model_id: Any
) -> list[fallback.Candidate]:
    """The models to ask in turn: the one named, a client's fallbacks, or a router's choice."""
    models = [parts.catalogue.get(i) for i in fallback.model_ids(body, model_id)]
    chosen = models[0].router if len(models) == 1 else None
    if chosen is not None:  # a router: the candidates that fit, best first
        fitting = parts.catalogue.candidates(chosen)
        models = router.choose(chosen, fitting, body, raw, parts.monitor.status, pricer)
    several = len(models) > 1 or chosen is not None  # a router's answer names its choice
    return [_candidate(m, meter, body, raw, several) for m in models]


def _candidate(
    model: Model, meter: Meter, body: dict[str, Any], raw: bytes, copy: bool
) -> fallback.Candidate:
    """The body one model is asked with: a copy of its own when there are several. Shallow:
    what a model changes in a body (its preset, the fields its plan sets, its name) is a
    top-level field, which each copy has of its own; the content they share (the messages,
    most of the bytes) is read once, not copied and walked per model. (The one change inside
    it, Messages' cache marks a model's price does not cover, only ever takes marks out.)"""
    model = _served(model, meter.path)
    if copy:
        body = dict(body)
    if model.preset is not None:
        presets.apply(model, body, meter.path)
    if copy or model.preset is not None:
        body["model"] = model.id
    if model.preset is not None:  # the estimate counts what goes upstream: the preset's too
        raw = orjson.dumps(body)
    # else the client's bytes: they name every model it asked for, so never fewer than sent
    wires.check(model, meter.path, body)  # translatable to its upstreams' dialects, before paying
    return fallback.Candidate(model, body, raw)


def _served(model: Model, path: str) -> Model:
    """The model with only the routes whose upstream serves `path` (Messages are served by
    whatever serves chat completions, translated where the dialects differ)."""
    served = tuple(r for r in model.routes if _serves(r, path))
    if not served:
        raise NotServed(f"the model {model.id!r} is not served on /v1/{path} by this node")
    return model if len(served) == len(model.routes) else replace(model, routes=served)


def _serves(route: Route, path: str) -> bool:
    return route.upstream.serves("chat/completions" if path == "messages" else path)
