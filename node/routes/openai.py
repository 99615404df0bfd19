"""OpenAI-compatible endpoints: thin handlers over the metered call and the catalogue."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from aiohttp import web

from node.errors import BadRequest, NodeError, NotServed, PaymentRequired, TokenRejected
from node.http import credentials
from node.http.web import json_response, read_body, read_json
from node.parts import PARTS, Parts
from node.pricing import metadata, presets
from node.pricing.catalogue import Model
from node.pricing.prices import Pricer
from node.proxy import fallback, legacy, router, stored, text
from node.proxy.audio import Upload
from node.proxy.meters import (
    UNLIMITED_MSAT,
    AudioMeter,
    ChatMeter,
    EmbeddingsMeter,
    ImagesMeter,
    Meter,
)
from node.routes import memory as memory_routes

routes = web.RouteTableDef()


async def _metered(
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
    return [_candidate(m, meter, body, raw, len(models) > 1) for m in models]


def _candidate(
    model: Model, meter: Meter, body: dict[str, Any], raw: bytes, copy: bool
) -> fallback.Candidate:
    """The body one model is asked with: a copy of its own when there are several."""
    served = tuple(r for r in model.routes if r.upstream.serves(meter.path))
    if not served:
        raise NotServed(f"the model {model.id!r} is not served on /v1/{meter.path} by this node")
    if len(served) < len(model.routes):
        model = replace(model, routes=served)
    if copy:
        body = orjson.loads(orjson.dumps(body))
    if model.preset is not None:
        presets.apply(model, body, meter.path)
    if copy or model.preset is not None:
        body["model"] = model.id
        raw = orjson.dumps(body)  # the estimate counts what goes upstream
    return fallback.Candidate(model, body, raw)


def _check_messages(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty array", param="messages")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise BadRequest("each message must be an object with a role", param="messages")


@routes.post("/v1/chat/completions")
async def chat_completions(request: web.Request) -> web.StreamResponse:
    body, raw = await read_json(request)
    if "models" not in body:  # with a fallback list, each is looked up in turn
        request.app[PARTS].catalogue.get(body.get("model"))  # an unknown model is named first
    return await _chat(request, body, raw)


async def _chat(request: web.Request, body: dict[str, Any], raw: bytes) -> web.StreamResponse:
    _check_messages(body)
    if legacy.uses_functions(body):  # the legacy format, over upstreams that speak tools
        legacy.to_tools(body)
        return await _metered(request, legacy.FunctionsMeter(), body, orjson.dumps(body))
    remembered = await memory_routes.remembered_chat(request, body, _metered)
    if remembered is not None:  # a preset with memory
        return remembered
    return await _metered(request, ChatMeter("chat/completions"), body, raw)


@routes.post("/v1/models/{model_id:.+}/chat/completions")
async def chat_completions_for(request: web.Request) -> web.StreamResponse:
    body, _ = await read_json(request)
    body["model"] = request.match_info["model_id"]
    return await _chat(request, body, orjson.dumps(body))


@routes.post("/v1/completions")
async def completions(request: web.Request) -> web.StreamResponse:
    body, raw = await read_json(request)
    if not isinstance(body.get("prompt"), str | list):
        raise BadRequest("prompt must be a string or an array", param="prompt")
    return await _metered(request, ChatMeter("completions"), body, raw)


@routes.post("/v1/text/generations")
async def text_generations(request: web.Request) -> web.StreamResponse:
    """A prompt's text: by /completions when the model has it, else wrapped into chat."""
    body, raw = await read_json(request)
    model = request.app[PARTS].catalogue.get(body.get("model"))
    if not isinstance(body.get("prompt"), str) or not body["prompt"]:
        raise BadRequest("prompt must be a non-empty string", param="prompt")
    if model.completions:
        return await _metered(request, ChatMeter("completions"), body, raw)
    chat = text.to_chat(body)
    return await _metered(request, text.WrappedTextMeter(), chat, orjson.dumps(chat))


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
    return await _audio(request, "audio/transcriptions")


@routes.post("/v1/audio/translations")
async def translations(request: web.Request) -> web.StreamResponse:
    """Audio into English text: metered exactly as a transcription of the same clip."""
    return await _audio(request, "audio/translations")


async def _audio(request: web.Request, path: str) -> web.StreamResponse:
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
    meter = AudioMeter(fields, audio, path)
    return await _metered(request, meter, {"model": form.get("model")}, b"")


@routes.get("/v1/models")
async def list_models(request: web.Request) -> web.Response:
    parts = request.app[PARTS]
    data = [_model_json(parts, m) for m in parts.catalogue.all()]
    return json_response({"object": "list", "data": data})


def _model_json(parts: Parts, model: Model) -> dict[str, Any]:
    """Its price (USD and sat) and the OpenRouter-style metadata (node.pricing.metadata)."""
    return model.to_json(parts.pricer.sats_pricing(model.price)) | metadata.describe(model)


@routes.get("/v1/models/{model_id:.+}")
async def get_model(request: web.Request) -> web.Response:
    parts = request.app[PARTS]
    model = parts.catalogue.get(request.match_info["model_id"])
    return json_response(_model_json(parts, model))
