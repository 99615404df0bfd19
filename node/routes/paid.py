"""A paid request, whatever its endpoint: the model, the payer, the metered call."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from aiohttp import web

from node.errors import NodeError, NotServed, PaymentRequired, TokenRejected
from node.http import credentials
from node.parts import PARTS
from node.pricing import presets
from node.pricing.catalogue import Model, Route
from node.proxy import stored, wires
from node.proxy.call import MeteredCall
from node.proxy.meters import UNLIMITED_MSAT, Meter


async def metered(
    request: web.Request, meter: Meter, body: dict[str, Any], raw: bytes, model_id: Any = None
) -> web.StreamResponse:
    parts = request.app[PARTS]
    model = _served(
        parts.catalogue.get(model_id if model_id is not None else body.get("model")), meter.path
    )
    if model.preset is not None:
        presets.apply(model, body, meter.path)
        raw = orjson.dumps(body)  # the estimate counts what goes upstream

    wires.check(model, meter.path, body)  # translatable to its upstreams' dialects, before paying
    used = parts.metered()  # one price for the quote, the reservation and the settlement

    def quote() -> int:  # the most this request can cost, whatever the balance
        plan = meter.plan(used.pricer, model, dict(body), raw, available=UNLIMITED_MSAT)
        return plan.max_cost_msat

    def affords(face_msat: int) -> None:  # an X-Cashu token's face value, before redeeming it
        try:
            meter.plan(used.pricer, model, dict(body), raw, available=face_msat)
        except PaymentRequired as short:
            least = meter.plan(used.pricer, model, dict(body), raw, UNLIMITED_MSAT).floor_msat
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
        return await MeteredCall(used, request, payer, model, meter).run(body, raw)
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


def _served(model: Model, path: str) -> Model:
    """The model with only the routes whose upstream serves `path` (Messages are served by
    whatever serves chat completions, translated where the dialects differ)."""
    served = tuple(r for r in model.routes if _serves(r, path))
    if not served:
        raise NotServed(f"the model {model.id!r} is not served on /v1/{path} by this node")
    return model if len(served) == len(model.routes) else replace(model, routes=served)


def _serves(route: Route, path: str) -> bool:
    return route.upstream.serves("chat/completions" if path == "messages" else path)
