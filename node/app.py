"""`create_app(settings)`: wiring only — parts built in `cleanup_ctx`, routes registered."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from node.admin import site as admin_site
from node.admin.config import with_overrides
from node.context import NODE, Node
from node.http import observe, ratelimit
from node.http.metrics import METRICS, WalletMetrics
from node.http.openapi import routes as openapi_routes
from node.http.web import BODY_TIMEOUT_S, error_middleware
from node.money.ledger import Ledger
from node.money.payments import Payments
from node.parts import build_wallet, keep_up, open_database, share_limits, start_nostr
from node.pricing.btc_rate import BtcRate
from node.pricing.catalogue import Catalogue
from node.pricing.prices import Pricer
from node.proxy.providers import MONITOR, ProviderMonitor
from node.proxy.upstream import new_session
from node.routes import discovery, estimate, health, nodes, openai
from node.routes import wallet as wallet_routes
from node.settings import Settings

log = logging.getLogger("nutgate")


def create_app(settings: Settings) -> web.Application:
    settings = with_overrides(settings)  # changes made in /admin win over the file
    app = web.Application(
        middlewares=[error_middleware, observe.observe_middleware, ratelimit.ratelimit_middleware],
        client_max_size=settings.limits.max_body_bytes,
    )
    app[BODY_TIMEOUT_S] = settings.limits.body_timeout_s
    observe.setup(app)
    ratelimit.setup(app, settings.limits)

    async def parts(app: web.Application) -> AsyncIterator[None]:
        db = open_database(settings)
        share_limits(app, db, settings)
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
        wallet = build_wallet(settings, db, ledger, http, WalletMetrics(app[METRICS]))
        nostr = start_nostr(settings, db)
        await nostr.start()  # background tasks only: a relay that is down never delays serving
        catalogue = Catalogue.from_settings(settings)
        node = Node(settings, db, ledger, catalogue, pricer, http, wallet, nostr)
        node.payments = Payments(ledger, wallet, settings.cashu.mints)
        node.rate = rate
        app[NODE] = node
        app[MONITOR] = monitor = ProviderMonitor(settings.upstreams, catalogue, http)
        await monitor.start()
        recovery = asyncio.create_task(keep_up(node))
        yield
        recovery.cancel()
        await monitor.stop()
        await node.nostr.stop()  # the admin may have replaced them
        await node.rate.stop()
        await http.close()
        ledger.commits.commit()  # writes of requests cut short by the shutdown
        db.close()

    app.cleanup_ctx.append(parts)
    app.add_routes(health.routes)
    app.add_routes(nodes.routes)
    app.add_routes(estimate.routes)
    app.add_routes(openai.routes)
    app.add_routes(wallet_routes.routes)
    app.add_routes(discovery.routes)
    admin_site.setup(app)
    app.add_routes(openapi_routes)
    return app
