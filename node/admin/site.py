"""The admin on the app: its routes, its page, and at start the password (generated if none)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from node.admin import routes, routes_keys, routes_money, routes_requests, ui
from node.parts import PARTS

log = logging.getLogger("nutgate.admin")


def setup(app: web.Application) -> None:
    """Register the admin; call after the cleanup context that builds the parts."""
    app.cleanup_ctx.append(_password)
    app.add_routes(routes.routes)
    app.add_routes(routes_money.routes)
    app.add_routes(routes_keys.routes)
    app.add_routes(routes_requests.routes)
    app.add_routes(ui.routes)


RESET_HINT = "forgot it? `nutgate admin reset-password --config <this node's config file>`"


async def _password(app: web.Application) -> AsyncIterator[None]:
    parts = app[PARTS]
    node = parts.settings.node
    generated = parts.admin.ensure_password(node.admin_password)
    page = f"http://{node.host}:{node.port}/admin"
    if generated is not None:
        # Shown once, on stdout only: the database keeps its scrypt hash, logs never see it.
        print(
            f"nutgate: admin page {page}: generated password (shown once): {generated}\n"
            f"nutgate: {RESET_HINT}",
            flush=True,
        )
        log.warning("no admin password configured: generated one, printed on stdout once")
    else:
        log.info("admin page %s; %s", page, RESET_HINT)
    yield
