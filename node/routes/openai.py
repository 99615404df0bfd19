"""OpenAI-compatible endpoints: thin handlers over the metered call and the catalogue."""

from __future__ import annotations

from aiohttp import web

from node.context import NODE
from node.errors import BadRequest, NodeError
from node.proxy import MeteredCall, full_cost_msat
from node.web import json_response, read_json

routes = web.RouteTableDef()


@routes.post("/v1/chat/completions")
async def chat_completions(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE]
    body, raw = await read_json(request)
    model = node.catalogue.get(body.get("model"))
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty array", param="messages")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise BadRequest("each message must be an object with a role", param="messages")
    payer = await node.payments.resolve(request, full_cost_msat(node, model, body, raw))
    try:
        return await MeteredCall(node, request, payer, model, "chat/completions").run(body, raw)
    except NodeError as exc:  # an X-Cashu payer gets what is left back as change
        exc.headers.update(await payer.finish(None))
        raise


@routes.get("/v1/models")
async def list_models(request: web.Request) -> web.Response:
    node = request.app[NODE]
    return json_response({"object": "list", "data": [m.to_json() for m in node.catalogue.all()]})


@routes.get("/v1/models/{model_id:.+}")
async def get_model(request: web.Request) -> web.Response:
    node = request.app[NODE]
    return json_response(node.catalogue.get(request.match_info["model_id"]).to_json())
