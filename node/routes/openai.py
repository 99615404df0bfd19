"""OpenAI-compatible endpoints: thin handlers over the metered call and the catalogue."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from aiohttp import web

from node.errors import BadRequest, NodeError, NotServed, PaymentRequired, TokenRejected
from node.http import credentials
from node.http.web import json_response, read_body, read_json
from node.parts import PARTS
from node.pricing import presets
from node.pricing.listing import model_json
from node.proxy import stored
from node.proxy.audio import Upload
from node.proxy.call import MeteredCall
from node.proxy.meters import (
    UNLIMITED_MSAT,
    AudioMeter,
    ChatMeter,
    EmbeddingsMeter,
    ImagesMeter,
    Meter,
)

routes = web.RouteTableDef()


async def _metered(
    request: web.Request, meter: Meter, body: dict[str, Any], raw: bytes, model_id: Any = None
) -> web.StreamResponse:
    parts = request.app[PARTS]
    model = parts.catalogue.get(model_id if model_id is not None else body.get("model"))
    served = tuple(r for r in model.routes if r.upstream.serves(meter.path))
    if not served:
        raise NotServed(f"the model {model.id!r} is not served on /v1/{meter.path} by this node")
    if len(served) < len(model.routes):
        model = replace(model, routes=served)
    if model.preset is not None:
        presets.apply(model, body, meter.path)
        raw = orjson.dumps(body)  # the estimate counts what goes upstream

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


def _check_messages(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty array", param="messages")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise BadRequest("each message must be an object with a role", param="messages")


@routes.post("/v1/chat/completions")
async def chat_completions(request: web.Request) -> web.StreamResponse:
    body, raw = await read_json(request)
    request.app[PARTS].catalogue.get(body.get("model"))  # an unknown model is named first
    _check_messages(body)
    return await _metered(request, ChatMeter("chat/completions"), body, raw)


@routes.post("/v1/models/{model_id:.+}/chat/completions")
async def chat_completions_for(request: web.Request) -> web.StreamResponse:
    body, _ = await read_json(request)
    body["model"] = request.match_info["model_id"]
    _check_messages(body)
    return await _metered(request, ChatMeter("chat/completions"), body, orjson.dumps(body))


@routes.post("/v1/completions")
async def completions(request: web.Request) -> web.StreamResponse:
    body, raw = await read_json(request)
    if not isinstance(body.get("prompt"), str | list):
        raise BadRequest("prompt must be a string or an array", param="prompt")
    return await _metered(request, ChatMeter("completions"), body, raw)


@routes.post("/v1/responses")
async def responses(request: web.Request) -> web.StreamResponse:
    body, raw = await read_json(request)
    if "input" not in body and "previous_response_id" not in body:
        raise BadRequest("input is required", param="input")
    return await _metered(request, ChatMeter("responses"), body, raw)


@routes.post("/v1/embeddings")
async def embeddings(request: web.Request) -> web.StreamResponse:
    body, raw = await read_json(request)
    return await _metered(request, EmbeddingsMeter(), body, raw)


@routes.post("/v1/images/generations")
async def images(request: web.Request) -> web.StreamResponse:
    body, raw = await read_json(request)
    if not isinstance(body.get("prompt"), str) or not body["prompt"]:
        raise BadRequest("prompt must be a non-empty string", param="prompt")
    return await _metered(request, ImagesMeter(), body, raw)


@routes.post("/v1/audio/transcriptions")
async def transcriptions(request: web.Request) -> web.StreamResponse:
    if not request.content_type.startswith("multipart/"):
        raise BadRequest("send the audio as multipart/form-data")
    try:
        form = await read_body(request, request.post())
    except ValueError:  # aiohttp's multipart parser: no boundary, or not the one announced
        raise BadRequest("the multipart/form-data body is malformed") from None
    upload = form.get("file")
    if not isinstance(upload, web.FileField):
        raise BadRequest("file is required: the audio to transcribe", param="file")
    fields = [(k, v) for k, v in form.items() if isinstance(v, str)]
    audio = Upload("file", upload.filename, upload.content_type, upload.file.read())
    meter = AudioMeter(fields, audio)
    return await _metered(request, meter, {"model": form.get("model")}, b"")


@routes.get("/v1/models")
async def list_models(request: web.Request) -> web.Response:
    parts = request.app[PARTS]
    data = [model_json(parts.pricer, m) for m in parts.catalogue.all()]
    return json_response({"object": "list", "data": data})


@routes.get("/v1/models/{model_id:.+}")
async def get_model(request: web.Request) -> web.Response:
    parts = request.app[PARTS]
    model = parts.catalogue.get(request.match_info["model_id"])
    return json_response(model_json(parts.pricer, model))


def unprefixed() -> list[web.RouteDef]:
    """The same endpoints without `/v1`, which clients send when their base URL lacks it."""
    return [
        web.route(r.method, r.path.removeprefix("/v1"), r.handler)
        for r in routes
        if isinstance(r, web.RouteDef)
    ]
