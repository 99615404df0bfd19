"""OpenAI-compatible endpoints: thin handlers over the metered call and the catalogue."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from node.errors import BadRequest
from node.http.web import json_response, read_body, read_json
from node.parts import PARTS, Parts
from node.pricing import metadata
from node.pricing.listing import model_json
from node.pricing.model import Model
from node.proxy import legacy, text
from node.proxy.audio import Upload
from node.proxy.meters import ChatMeter, EmbeddingsMeter
from node.proxy.unit_meters import AudioMeter, ImagesMeter
from node.routes import memory as memory_routes
from node.routes.paid import metered

routes = web.RouteTableDef()


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
        return await metered(request, legacy.FunctionsMeter(), body, orjson.dumps(body))
    remembered = await memory_routes.remembered_chat(request, body, metered)
    if remembered is not None:  # a preset with memory
        return remembered
    return await metered(request, ChatMeter("chat/completions"), body, raw)


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
    return await metered(request, ChatMeter("completions"), body, raw)


@routes.post("/v1/text/generations")
async def text_generations(request: web.Request) -> web.StreamResponse:
    """A prompt's text: by /completions when the model has it, else wrapped into chat."""
    body, raw = await read_json(request)
    model = request.app[PARTS].catalogue.get(body.get("model"))
    if not isinstance(body.get("prompt"), str) or not body["prompt"]:
        raise BadRequest("prompt must be a non-empty string", param="prompt")
    if model.completions:
        return await metered(request, ChatMeter("completions"), body, raw)
    chat = text.to_chat(body)
    return await metered(request, text.WrappedTextMeter(), chat, orjson.dumps(chat))


@routes.post("/v1/responses")
async def responses(request: web.Request) -> web.StreamResponse:
    body, raw = await read_json(request)
    if "input" not in body and "previous_response_id" not in body:
        raise BadRequest("input is required", param="input")
    return await metered(request, ChatMeter("responses"), body, raw)


@routes.post("/v1/embeddings")
async def embeddings(request: web.Request) -> web.StreamResponse:
    body, raw = await read_json(request)
    return await metered(request, EmbeddingsMeter(), body, raw)


@routes.post("/v1/images/generations")
async def images(request: web.Request) -> web.StreamResponse:
    body, raw = await read_json(request)
    if not isinstance(body.get("prompt"), str) or not body["prompt"]:
        raise BadRequest("prompt must be a non-empty string", param="prompt")
    return await metered(request, ImagesMeter(), body, raw)


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
    return await metered(request, meter, {"model": form.get("model")}, b"")


@routes.get("/v1/models")
async def list_models(request: web.Request) -> web.Response:
    parts = request.app[PARTS]
    data = [_model_json(parts, m) for m in parts.catalogue.all()]
    return json_response({"object": "list", "data": data})


def _model_json(parts: Parts, model: Model) -> dict[str, Any]:
    """Its price (USD and sat) and the OpenRouter-style metadata (node.pricing.metadata)."""
    return model_json(parts.pricer, model) | metadata.describe(model)


@routes.get("/v1/models/{model_id:.+}")
async def get_model(request: web.Request) -> web.Response:
    parts = request.app[PARTS]
    model = parts.catalogue.get(request.match_info["model_id"])
    return json_response(_model_json(parts, model))


def unprefixed() -> list[web.RouteDef]:
    """The same endpoints without `/v1`, which clients send when their base URL lacks it."""
    return [
        web.route(r.method, r.path.removeprefix("/v1"), r.handler)
        for r in routes
        if isinstance(r, web.RouteDef)
    ]
