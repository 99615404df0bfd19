"""The operator's admin: an API under /admin/api and a web page at /admin.

    setup(app)           routes, the page, and at start the password (generated if none)
    with_overrides(s)    at start: settings changed in /admin laid over the file's
    MIGRATIONS           series "admin" of the node's database
    apply_settings       swap the node's settings live, rebuilding what depends on them

Modules: auth (password, sessions, throttle), config (settings), upstreams, money, stats,
http (cookie + guard), routes / routes_money (thin handlers), ui (the static page).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from node.admin import routes, routes_money, ui
from node.admin.auth import AdminAuth
from node.admin.config import apply_settings, with_overrides
from node.admin.http import ADMIN
from node.admin.tables import MIGRATIONS
from node.context import NODE

__all__ = ["MIGRATIONS", "apply_settings", "setup", "with_overrides"]

log = logging.getLogger("nutgate.admin")


def setup(app: web.Application) -> None:
    """Register the admin; call after the cleanup context that builds the node."""
    app.cleanup_ctx.append(_admin_parts)
    app.add_routes(routes.routes)
    app.add_routes(routes_money.routes)
    app.add_routes(ui.routes)


async def _admin_parts(app: web.Application) -> AsyncIterator[None]:
    node = app[NODE]
    auth = AdminAuth(node.db)
    generated = auth.ensure_password(node.settings.node.admin_password)
    if generated is not None:
        # Shown once, on stdout only: the database keeps its scrypt hash, logs never see it.
        print(f"nutgate: generated admin password (shown once): {generated}", flush=True)
        log.warning("no admin password configured: generated one, printed on stdout once")
    app[ADMIN] = auth
    yield
