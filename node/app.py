"""`create_app(settings)`: wiring only — parts built in `cleanup_ctx`, routes registered."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from fractions import Fraction

from aiohttp import web

from node import ledger as ledger_module
from node import observe, ratelimit
from node.catalogue import Catalogue
from node.context import NODE, Node
from node.ledger import Ledger
from node.pricing import NoRate, Pricer, exact
from node.routes import health, openai
from node.settings import Settings
from node.store import Database
from node.upstream import new_session
from node.web import error_middleware

log = logging.getLogger("nutgate")


def open_database(settings: Settings) -> Database:
    return Database(settings.database_path, {"node": ledger_module.MIGRATIONS})


def _fixed_rate(settings: Settings) -> Fraction:
    if settings.pricing.btc_usd is None:
        raise NoRate("no BTC/USD rate configured")
    return exact(settings.pricing.btc_usd)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, observe.observe_middleware, ratelimit.ratelimit_middleware],
        client_max_size=settings.limits.max_body_bytes,
    )
    observe.setup(app)
    ratelimit.setup(app, settings.limits)

    async def parts(app: web.Application) -> AsyncIterator[None]:
        db = open_database(settings)
        ledger = Ledger(db)
        orphans = ledger.resolve_orphans()
        if orphans:
            log.warning("settled %d reservation(s) left by a previous run", orphans)
        pricer = Pricer(
            rate=lambda: _fixed_rate(settings),
            markup=settings.pricing.markup,
            request_fee_msat=settings.pricing.request_fee_msat,
            min_charge_msat=settings.pricing.min_charge_msat,
        )
        http = new_session()
        app[NODE] = Node(settings, db, ledger, Catalogue.from_settings(settings), pricer, http)
        yield
        await http.close()
        db.close()

    app.cleanup_ctx.append(parts)
    app.add_routes(health.routes)
    app.add_routes(openai.routes)
    return app
