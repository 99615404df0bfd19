"""A paid request, whatever its endpoint: the model, the payer, the metered call."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from node.errors import NodeError
from node.http import credentials
from node.parts import PARTS
from node.pricing import presets
from node.proxy import stored, wires
from node.proxy.call import MeteredCall
from node.proxy.meters import UNLIMITED_MSAT, Meter


async def metered(
    request: web.Request, meter: Meter, body: dict[str, Any], raw: bytes, model_id: Any = None
) -> web.StreamResponse:
    parts = request.app[PARTS]
    model = parts.catalogue.get(model_id if model_id is not None else body.get("model"))
    if model.preset is not None:
        presets.apply(model, body, meter.path)
        raw = orjson.dumps(body)  # the estimate counts what goes upstream

    wires.check(model, meter.path, body)  # translatable to its upstreams' dialects, before paying
    used = parts.metered()  # one price for the quote, the reservation and the settlement

    def quote() -> int:  # the most this request can cost, whatever the balance
        plan = meter.plan(used.pricer, model, dict(body), raw, available=UNLIMITED_MSAT)
        return plan.max_cost_msat

    paying = credentials.presented(request, parts.ledger)
    stored.refuse_foreign(used.stored, paying.owner, body, meter.path)  # before any redeeming
    payer = await parts.payments.resolve(paying, quote)
    try:
        return await MeteredCall(used, request, payer, model, meter).run(body, raw)
    except NodeError as exc:  # an X-Cashu payer gets what is left back as change
        if exc.code != "token_spent":  # else the account is another request's, with the token
            exc.headers.update(await payer.finish())
        raise
