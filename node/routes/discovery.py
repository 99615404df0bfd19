"""Who this node is and what it serves: /v1/info and /v1/providers (shapes of Routstr's API)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aiohttp import web

from node.errors import NotFound
from node.http.web import json_response
from node.parts import PARTS, Parts
from node.pricing.listing import model_json
from node.pricing.model import Model
from node.proxy.providers import Status
from node.settings.catalogue import ENDPOINTS, UpstreamSection

routes = web.RouteTableDef()

# The node's nostr public key (hex), set by the nostr service when it runs.

FEATURES = ["streaming", "function_calling", "failover", "presets"]


def _version() -> str:
    try:
        return version("nutgate")
    except PackageNotFoundError:
        return "0.0.0"


def endpoints(*upstreams: UpstreamSection) -> list[str]:
    """What these upstreams serve together, in the node's order."""
    return [e for e in ENDPOINTS if any(u.serves(e) for u in upstreams)]


def public_url(parts: Parts) -> str:
    settings = parts.settings.node
    return settings.public_url or f"http://{settings.host}:{settings.port}"


def _about(parts: Parts) -> dict[str, Any]:
    return {
        "name": parts.settings.node.name,
        "description": parts.settings.node.description,
        "version": _version(),
        "public_url": public_url(parts),
        "mints": parts.settings.cashu.mints,
        "pubkey": parts.nostr.pubkey,
        "npub": parts.nostr.npub,
        "endpoints": endpoints(*parts.settings.upstreams),
    }


@routes.get("/v1/info")
async def info(request: web.Request) -> web.Response:
    parts = request.app[PARTS]
    return json_response({**_about(parts), "models": len(parts.catalogue.all())})


@routes.get("/")
async def root(request: web.Request) -> web.Response:
    """What Routstr's clients read at a node's root (routstr-core's shape): the node, its
    mints, its URLs and the models with their prices."""
    parts = request.app[PARTS]
    models = [model_json(parts.pricer, m) for m in parts.catalogue.all()]
    about = _about(parts)
    return json_response(
        {**about, "http_url": about["public_url"], "onion_url": "", "models": models}
    )


def _status(request: web.Request, upstream: UpstreamSection) -> str:
    return str(request.app[PARTS].monitor.status.get(upstream.name, Status.UNKNOWN))


@routes.get("/v1/providers")
async def providers(request: web.Request) -> web.Response:
    parts = request.app[PARTS]
    return json_response(
        {
            "providers": [
                {
                    "name": up.name,
                    "models": [m.id for m in parts.catalogue.served_by(up.name)],
                    "endpoints": endpoints(up),
                    "status": _status(request, up),
                }
                for up in parts.settings.upstreams
            ]
        }
    )


@routes.get("/v1/providers/{name}")
async def provider(request: web.Request) -> web.Response:
    parts = request.app[PARTS]
    name = request.match_info["name"]
    up = next((u for u in parts.settings.upstreams if u.name == name), None)
    if up is None:
        raise NotFound(f"no provider named {name!r} on this node", code="provider_not_found")
    return json_response(
        {
            "name": up.name,
            "display_name": up.display_name or up.name,
            "description": up.description,
            "models": [_model(m) for m in parts.catalogue.served_by(up.name)],
            "endpoints": endpoints(up),
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
