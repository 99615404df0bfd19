"""`create_app(settings)`: wiring only — parts built in `cleanup_ctx`, routes registered."""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

import wallet as cashu
from node import admin
from node.context import NODE, Node
from node.db import shared_state as shared
from node.db.open import open_store
from node.db.store import Store
from node.http import observe, ratelimit
from node.http.metrics import METRICS, WalletMetrics
from node.http.openapi import routes as openapi_routes
from node.http.web import BODY_TIMEOUT_S, error_middleware
from node.money import ledger as ledger_module
from node.money.books import LedgerHooks
from node.money.ledger import Ledger
from node.money.payments import Payments
from node.nostr.keys import Announcement, NostrKeyError, load_or_create_keys
from node.nostr.service import NostrService
from node.pricing.btc_rate import BtcRate
from node.pricing.catalogue import Catalogue
from node.pricing.prices import Pricer
from node.proxy import stored
from node.proxy.providers import MONITOR, ProviderMonitor
from node.proxy.upstream import new_session
from node.routes import discovery, estimate, health, nodes, openai
from node.routes import wallet as wallet_routes
from node.settings import ConfigError, Settings

log = logging.getLogger("nutgate")

VERSION = importlib.metadata.version("nutgate")

RECOVERY_RETRY_S = 30.0
ANNOUNCER = "nostr-announcer"  # the one instance that publishes the announcement


def open_database(settings: Settings) -> Store:
    return open_store(
        settings.store.url,
        settings.database_path,
        {
            "node": ledger_module.MIGRATIONS,
            "wallet": cashu.MIGRATIONS,
            "admin": admin.MIGRATIONS,
            "shared": shared.MIGRATIONS,
            "stored": stored.MIGRATIONS,
        },
    )


def build_wallet(
    settings: Settings,
    db: Store,
    ledger: Ledger,
    http: object,
    events: cashu.WalletEvents | None = None,
) -> cashu.Wallet:
    hooks = LedgerHooks(ledger)
    seed_file = settings.node.data_dir / "wallet.seed"
    if db.kind == "sqlite":
        seed = cashu.load_or_create_seed(seed_file)
    else:  # instances on one database derive the same outputs from the shared counters
        try:
            seed = cashu.shared_seed(db, seed_file)
        except cashu.SeedMismatch as exc:
            raise ConfigError(f"store.url: {exc}") from exc
    return cashu.Wallet(
        db,
        seed,
        settings.cashu.mints,
        http,  # type: ignore[arg-type]
        hooks.credit,
        hooks.debit,
        hooks.refund,
        timeout_s=settings.cashu.mint_timeout_s,
        events=events,
    )


async def keep_up(node: Node) -> None:
    """Finish swaps and payouts a previous run left pending, then keep finishing those a mint
    left in doubt while the node runs (a lost or late answer), so none waits for a restart.
    With several instances: also settle what one that died left, and let another announce."""
    while True:
        # Each step guarded on its own: a bug, a database hiccup or a mint that is down must
        # neither end this task for good nor keep the other steps from running.
        try:
            await node.wallet.recover()
        except cashu.WalletError as exc:
            log.warning("wallet recovery incomplete (%s)", exc)
        except Exception:
            log.exception("wallet recovery failed; trying again in %.0f s", RECOVERY_RETRY_S)
        try:
            _settle_orphans_and_announce(node)
        except Exception:
            log.exception("settling orphans failed; trying again in %.0f s", RECOVERY_RETRY_S)
        await asyncio.sleep(RECOVERY_RETRY_S)


def _settle_orphans_and_announce(node: Node) -> None:
    orphans = node.ledger.resolve_orphans()
    if orphans:
        log.warning("settled %d reservation(s) of a node instance that stopped", orphans)
    wants = node.settings.nostr.announce and not node.nostr.announcing
    if wants and node.db.try_singleton(ANNOUNCER):
        node.nostr.begin_announcing()


def share_limits(app: web.Application, db: Store, settings: Settings) -> None:
    """Several instances on one database count each client's requests together."""
    limiter = app.get(ratelimit.LIMITER)
    if limiter is not None and db.kind != "sqlite":
        limiter.store = shared.SharedRateStore(ratelimit.windows_from(settings.limits), db)
        limiter.clock = time.time


def start_nostr(settings: Settings, db: Store) -> NostrService:
    """The node's Nostr presence. Instances on one database share one key (the first one's)
    and one of them announces at a time."""
    nsec = settings.nostr.nsec
    try:
        keys = load_or_create_keys(settings.node.data_dir, nsec)
        if db.kind != "sqlite" and not nsec.strip():
            shared_key = cashu.shared_secret(db, "nostr.nsec", keys.secret_key().to_bech32())
            keys = load_or_create_keys(settings.node.data_dir, shared_key)
    except NostrKeyError as exc:
        raise ConfigError(f"nostr.nsec: {exc}") from exc
    announce = settings.nostr.announce and db.try_singleton(ANNOUNCER)
    service = NostrService(keys, settings.nostr.relays, announce)
    service.update(Announcement.from_settings(settings, VERSION))
    return service


def create_app(settings: Settings) -> web.Application:
    settings = admin.with_overrides(settings)  # changes made in /admin win over the file
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
    admin.setup(app)
    app.add_routes(openapi_routes)
    return app
