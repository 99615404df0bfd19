"""A router model (Botstrapp's "strap"): `[[routers]]` picks, per request, which of its
candidate models answers, and the request is charged at that model's price.

Rules, in turn: a candidate must fit the prompt (its estimate within the context window),
take tools if the request sends them, and read images if the request has any; of those, the
healthy ones first, then the cheapest (or the listed order). The rest of the list is the
fallback when the chosen one fails before anything reached the client (node/proxy/fallback.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from node.errors import BadRequest
from node.pricing import metadata
from node.pricing.model import Model
from node.pricing.prices import Pricer
from node.proxy.meters import estimate_prompt_tokens
from node.proxy.providers import Status
from node.settings.catalogue import RouterSection


def availability(status: dict[str, Status], model: Model) -> str:
    """available: an upstream serving it answers its health check; unavailable: all are down."""
    seen = {status.get(r.upstream.name, Status.UNKNOWN) for r in model.routes}
    if Status.ACTIVE in seen:
        return "available"
    return "unavailable" if seen == {Status.DOWN} else "unknown"


def choose(
    router: RouterSection,
    candidates: list[Model],
    body: dict[str, Any],
    raw: bytes,
    status: dict[str, Status],
    pricer: Pricer,
) -> list[Model]:
    """The candidates that fit the request, best first; a 400 when none does."""
    prompt = estimate_prompt_tokens(raw)
    fitting = [m for m in candidates if _fits(m, body, prompt)]
    if not fitting:
        raise BadRequest(
            f"no model of router {router.name!r} fits this request (its length, tools, images)",
            param="model",
            code="no_route",
        )
    down: Callable[[Model], bool] = lambda m: availability(status, m) == "unavailable"  # noqa: E731
    if router.order == "cheapest":
        return sorted(fitting, key=lambda m: (down(m), metadata.typical_usd(pricer, m)))
    return sorted(fitting, key=down)


def _fits(model: Model, body: dict[str, Any], prompt_tokens: int) -> bool:
    if not model.token_priced or prompt_tokens > model.context_length:
        return False
    described = metadata.describe(model)
    if (body.get("tools") or body.get("functions")) and "tools" not in described[
        "supported_parameters"
    ]:
        return False
    inputs = described["architecture"]["input_modalities"]
    return not (_has_images(body) and "image" not in inputs)


def _has_images(body: dict[str, Any]) -> bool:
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and part.get("type") in ("image_url", "input_image"):
                return True
    return False
