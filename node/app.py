"""`create_app(settings)`: wiring only — middlewares, the parts built in `cleanup_ctx`, routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from node.admin import site as admin_site
from node.admin.config import with_overrides
from node.http import cors, lag, observe, ratelimit
from node.http.metrics import Metrics
from node.http.openapi import routes as openapi_routes
from node.http.web import BODY_TIMEOUT_S, MAX_HEADER_BYTES, error_middleware
from node.parts import PARTS, build_parts, close_parts, keep_up, watch_invoices
from node.routes import (
    discovery,
    estimate,
    gateways,
    health,
    keys,
    messages,
    nodes,
    openai,
    payouts,
    usage,
)
from node.routes import lightning as lightning_routes
from node.routes import memory as memory_routes
from node.routes import wallet as wallet_routes
from node.settings import Settings
from wallet import Checkpoint


def create_app(settings: Settings, *, checkpoint: Checkpoint | None = None) -> web.Application:
    """The node. `checkpoint`: the wallet's, for the crash tests only (none in production)."""
    settings = with_overrides(settings)  # changes made in /admin win over the file
    metrics = Metrics()
    limiter = ratelimit.limiter_for(settings.limits)
    app = web.Application(
        middlewares=[
            error_middleware,
            cors.preflight,
            observe.middleware(metrics),
            ratelimit.middleware(limiter, metrics),
        ],
        client_max_size=settings.limits.max_body_bytes,
    )
    app[BODY_TIMEOUT_S] = settings.limits.body_timeout_s
    app[MAX_HEADER_BYTES] = settings.limits.max_header_bytes
    observe.setup(app, metrics)
    cors.setup(app, settings.http.cors_origins)
    ratelimit.setup(app, limiter)

    async def parts(app: web.Application) -> AsyncIterator[None]:
        app[PARTS] = built = await build_parts(settings, metrics, limiter, checkpoint)
        recovery = asyncio.create_task(keep_up(built))
        watcher = asyncio.create_task(watch_invoices(built))
        yield
        watcher.cancel()
        recovery.cancel()
        await close_parts(built)

    app.cleanup_ctx.append(parts)
    app.cleanup_ctx.append(lag.monitor)  # off unless a bench asks (node/http/lag.py)
    app.add_routes(health.routes)
    app.add_routes(nodes.routes)
    app.add_routes(estimate.routes)
    app.add_routes(openai.routes)
    app.add_routes(openai.unprefixed())  # /chat/completions, /models…: a base URL without /v1
    app.add_routes(messages.routes)
    app.add_routes(wallet_routes.routes)
    app.add_routes(payouts.routes)
    app.add_routes(lightning_routes.routes)
    app.add_routes(usage.routes)
    app.add_routes(keys.routes)
    app.add_routes(discovery.routes)
    app.add_routes(gateways.routes)
    app.add_routes(memory_routes.routes)
    admin_site.setup(app)
    app.add_routes(openapi_routes)
    return app
