"""Who this node is and what it serves: /v1/info and /v1/providers (shapes of Routstr's API)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aiohttp import web

from node.context import NODE, Node
from node.errors import NotFound
from node.http.web import json_response
from node.pricing.catalogue import Model
from node.proxy.providers import MONITOR, Status
from node.settings import UpstreamSection

routes = web.RouteTableDef()

# The node's nostr public key (hex), set by the nostr service when it runs.

ENDPOINTS = [
    "chat/completions",
    "completions",
    "embeddings",
    "responses",
    "images/generations",
    "audio/transcriptions",
]
FEATURES = ["streaming", "function_calling", "failover", "presets"]


def _version() -> str:
    try:
        return version("nutgate")
    except PackageNotFoundError:
        return "0.0.0"


def public_url(node: Node) -> str:
    settings = node.settings.node
    return settings.public_url or f"http://{settings.host}:{settings.port}"


@routes.get("/v1/info")
async def info(request: web.Request) -> web.Response:
    node = request.app[NODE]
    return json_response(
        {
            "name": node.settings.node.name,
            "description": node.settings.node.description,
            "version": _version(),
            "public_url": public_url(node),
            "mints": node.settings.cashu.mints,
            "pubkey": node.nostr.pubkey,
            "npub": node.nostr.npub,
            "endpoints": ENDPOINTS,
            "models": len(node.catalogue.all()),
        }
    )


def _status(request: web.Request, upstream: UpstreamSection) -> str:
    return str(request.app[MONITOR].status.get(upstream.name, Status.UNKNOWN))


@routes.get("/v1/providers")
async def providers(request: web.Request) -> web.Response:
    node = request.app[NODE]
    return json_response(
        {
            "providers": [
                {
                    "name": up.name,
                    "models": [m.id for m in node.catalogue.served_by(up.name)],
                    "endpoints": ENDPOINTS,
                    "status": _status(request, up),
                }
                for up in node.settings.upstreams
            ]
        }
    )


@routes.get("/v1/providers/{name}")
async def provider(request: web.Request) -> web.Response:
    node = request.app[NODE]
    name = request.match_info["name"]
    up = next((u for u in node.settings.upstreams if u.name == name), None)
    if up is None:
        raise NotFound(f"no provider named {name!r} on this node", code="provider_not_found")
    return json_response(
        {
            "name": up.name,
            "display_name": up.display_name or up.name,
            "description": up.description,
            "models": [_model(m) for m in node.catalogue.served_by(up.name)],
            "endpoints": ENDPOINTS,
            "features": FEATURES,
            "status": _status(request, up),
        }
    )


def _model(model: Model) -> dict[str, Any]:
    return {
        "id": model.id,
        "name": model.id,
        "context_window": model.context_length,
        "pricing": {
            "prompt": float(model.price.prompt * 1000),
            "completion": float(model.price.completion * 1000),
            "unit": "1k tokens",
        },
    }
