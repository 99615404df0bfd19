"""CORS for the API, so browser wallets (a page of another origin) can pay and read the change.

`[http] cors_origins` lists the origins allowed (`*`: any, the default). A preflight (`OPTIONS`
with `Access-Control-Request-Method`) is answered here, before the rate limit and the routes;
every answer to an allowed origin names it and exposes the headers a client reads (`X-Cashu`,
the cost, the request id, the rate limit). The admin (`/admin`) is never shared: its session
cookie must not be usable from another site, so its paths get no CORS header at all.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

ORIGINS = web.AppKey("cors_origins", tuple)
EXPOSED = ", ".join(
    (
        "X-Cashu",
        "X-Cost-Msat",
        "x-request-id",
        "x-routstr-request-id",
        "X-Routstr-Cost-Msats",
        "X-Routstr-Input-Cost-Msats",
        "X-Routstr-Output-Cost-Msats",
        "X-Routstr-Cost-Usd",
        "X-Required-Msat",
        "X-Original-Request-Id",
        "Idempotency-Key",
        "Retry-After",
        "retry-after-ms",
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
    )
)
ALLOWED_HEADERS = "Authorization, Content-Type, X-Cashu, Idempotency-Key, OpenAI-Beta"
METHODS = "GET, POST, PATCH, DELETE, OPTIONS"  # PATCH: /v1/keys/{id}
MAX_AGE_S = "600"


def _allowed(request: web.BaseRequest) -> str | None:
    """The Access-Control-Allow-Origin value for this request, or None (no CORS)."""
    origin = request.headers.get("Origin")
    if not origin or request.path == "/admin" or request.path.startswith("/admin/"):
        return None
    if not isinstance(request, web.Request):
        return None
    origins: tuple[str, ...] = request.config_dict.get(ORIGINS, ())
    if "*" in origins:
        return "*"
    return origin if origin in origins else None


@web.middleware
async def preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer a CORS preflight for an allowed origin: 204 with what may be sent."""
    asked = request.headers.get("Access-Control-Request-Method")
    if request.method != "OPTIONS" or not asked or _allowed(request) is None:
        return await handler(request)
    headers = {
        "Access-Control-Allow-Methods": METHODS,
        "Access-Control-Allow-Headers": request.headers.get(
            "Access-Control-Request-Headers", ALLOWED_HEADERS
        ),
        "Access-Control-Max-Age": MAX_AGE_S,
    }
    return web.Response(status=204, headers=headers)


async def _stamp(request: web.BaseRequest, response: web.StreamResponse) -> None:
    # Runs as headers are sent: streamed answers and errors get them too.
    allow = _allowed(request)
    if allow is None:
        return
    response.headers["Access-Control-Allow-Origin"] = allow
    response.headers["Access-Control-Expose-Headers"] = EXPOSED
    if allow != "*":
        response.headers["Vary"] = "Origin"


def setup(app: web.Application, origins: list[str]) -> None:
    app[ORIGINS] = tuple(origins)
    app.on_response_prepare.append(_stamp)
