"""`create_app(settings)`: wiring only — parts built in `cleanup_ctx`, routes registered."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from node import ledger as ledger_module
from node.btc_rate import BtcRate
from node.catalogue import Catalogue
from node.context import NODE, Node
from node.ledger import Ledger
from node.pricing import Pricer
from node.providers import MONITOR, ProviderMonitor
from node.routes import discovery, health, openai
from node.settings import Settings
from node.store import Database
from node.upstream import new_session
from node.web import error_middleware

log = logging.getLogger("nutgate")


def open_database(settings: Settings) -> Database:
    return Database(settings.database_path, {"node": ledger_module.MIGRATIONS})


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware], client_max_size=settings.limits.max_body_bytes
    )

    async def parts(app: web.Application) -> AsyncIterator[None]:
        db = open_database(settings)
        ledger = Ledger(db)
        orphans = ledger.resolve_orphans()
        if orphans:
            log.warning("settled %d reservation(s) left by a previous run", orphans)
        rate = BtcRate.from_settings(settings.pricing)
        await rate.start()
        pricer = Pricer(
            rate=rate.current,
            markup=settings.pricing.markup,
            request_fee_msat=settings.pricing.request_fee_msat,
            min_charge_msat=settings.pricing.min_charge_msat,
        )
        http = new_session()
        catalogue = Catalogue.from_settings(settings)
        app[NODE] = Node(settings, db, ledger, catalogue, pricer, http)
        app[MONITOR] = monitor = ProviderMonitor(settings.upstreams, catalogue, http)
        await monitor.start()
        yield
        await monitor.stop()
        await rate.stop()
        await http.close()
        db.close()

    app.cleanup_ctx.append(parts)
    app.add_routes(health.routes)
    app.add_routes(openai.routes)
    app.add_routes(discovery.routes)
    return app
