"""The node's parts: one registry (`Parts`), built at start by `build_parts`, reached by
handlers through `PARTS`, and the builders the admin uses again when settings change.

    settings   the configuration in force (the file, NUTGATE_* variables, the admin's changes)
    db         the store: SQLite, or PostgreSQL shared by several instances
    ledger     accounts, reservations, entries            wallet     proofs, swaps, payouts
    records    a record per paid request                  keys       sub-keys, limits, expiry
    payments   payers, tokens in, change out              catalogue  the models sold
    rate       the BTC price                              pricer     USD prices to msat
    http       the client session for upstreams, mints, exchanges
    monitor    the upstreams' health and listings         stored     ids of upstream objects
    nostr      keys, announcement, discovery              metrics    the Prometheus registry
    limiter    the rate limiter (None when off)           admin      the admin's password, sessions

A request reads the parts it uses once (`Parts.metered`), so an admin's change of settings
mid-request cannot change its price between the reservation and the settlement.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
from aiohttp import web

import wallet as cashu
from node.admin import tables as admin_tables
from node.admin.auth import AdminAuth
from node.db import shared_state
from node.db.open import open_store
from node.db.shared_state import SharedRateStore
from node.db.store import Store
from node.http.metrics import Metrics, WalletMetrics
from node.http.ratelimit import Limiter, windows_from
from node.money import keys as keys_schema
from node.money import ledger_schema
from node.money import records as records_schema
from node.money import refunds as refunds_schema
from node.money.autopay import EarningsAutopay
from node.money.books import LedgerHooks
from node.money.keys import Keys
from node.money.ledger import Ledger
from node.money.lightning import Lightning
from node.money.payments import Payments
from node.money.records import Record, Records
from node.money.refunds import Refunds
from node.nostr.keys import Announcement, NostrKeyError, load_or_create_keys
from node.nostr.service import NostrService
from node.pricing.btc_rate import BtcRate
from node.pricing.catalogue import Catalogue
from node.pricing.prices import Pricer, Usage, exact
from node.pricing.upstream_cost import UpstreamCost, from_charge
from node.proxy import memory, stored
from node.proxy.call import CallParts
from node.proxy.memory import Memory
from node.proxy.providers import ProviderMonitor
from node.proxy.stored import StoredObjects
from node.proxy.upstream import new_session
from node.settings import ConfigError, Settings

log = logging.getLogger("nutgate")

VERSION = importlib.metadata.version("nutgate")

RECOVERY_RETRY_S = 30.0
ANNOUNCER = "nostr-announcer"  # the one instance that publishes the announcement


@dataclass
class Parts:
    settings: Settings
    db: Store
    ledger: Ledger
    catalogue: Catalogue
    rate: BtcRate
    pricer: Pricer
    http: aiohttp.ClientSession
    wallet: cashu.Wallet
    payments: Payments
    lightning: Lightning
    refunds: Refunds
    autopay: EarningsAutopay
    nostr: NostrService
    monitor: ProviderMonitor
    stored: StoredObjects
    memory: Memory
    metrics: Metrics
    limiter: Limiter | None
    admin: AdminAuth
    records: Records
    keys: Keys

    def metered(self) -> CallParts:
        """What one paid call uses, read now and kept for the whole call."""
        return CallParts(
            self.ledger, self.pricer, self.monitor, self.http, self.stored, self.records, self.keys
        )


PARTS = web.AppKey("parts", Parts)
T = TypeVar("T")


def open_database(settings: Settings) -> Store:
    return open_store(
        settings.store.url,
        settings.database_path,
        {
            "node": ledger_schema.MIGRATIONS,
            "wallet": cashu.MIGRATIONS,
            "admin": admin_tables.MIGRATIONS,
            "shared": shared_state.MIGRATIONS,
            "stored": stored.MIGRATIONS,
            "memory": memory.MIGRATIONS,
            "records": records_schema.MIGRATIONS,
            "keys": keys_schema.MIGRATIONS,
            "refunds": refunds_schema.MIGRATIONS,
        },
    )


def build_wallet(
    settings: Settings,
    db: Store,
    ledger: Ledger,
    http: aiohttp.ClientSession,
    events: cashu.WalletEvents | None = None,
    checkpoint: cashu.Checkpoint | None = None,
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
        http,
        hooks.credit,
        hooks.debit,
        hooks.refund,
        timeout_s=settings.cashu.mint_timeout_s,
        melt_timeout_s=settings.lightning.melt_timeout_s,
        events=events,
        checkpoint=checkpoint,
    )


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


def _share_limits(limiter: Limiter, ledger: Ledger, settings: Settings) -> None:
    """The limiter counts a known account under its key; several instances on one database
    count each client's requests together."""
    limiter.ledger = ledger
    if ledger.db.kind != "sqlite":
        limiter.store = SharedRateStore(windows_from(settings.limits), ledger.db)
        limiter.clock = time.time


async def build_parts(
    settings: Settings,
    metrics: Metrics,
    limiter: Limiter | None,
    checkpoint: cashu.Checkpoint | None = None,
) -> Parts:
    """Every part, started: the metrics and the limiter the middlewares already hold.
    `checkpoint`: the wallet's (see wallet.core.Checkpoint), for the crash tests only."""
    db, ledger, records = _open_books(settings, limiter, checkpoint)
    keys = Keys(db, ledger)
    metrics.watch_ledger(ledger)
    rate = BtcRate.from_settings(settings.pricing)
    await rate.start()
    http = new_session()
    wallet = build_wallet(settings, db, ledger, http, WalletMetrics(metrics), checkpoint)
    nostr = start_nostr(settings, db)
    await nostr.start()  # background tasks only: a relay that is down never delays serving
    catalogue = Catalogue.from_settings(settings)
    monitor = ProviderMonitor(settings.upstreams, catalogue, http)
    await monitor.start()
    lightning = _lightning(settings, ledger, wallet, http)
    parts = Parts(
        settings=settings,
        db=db,
        ledger=ledger,
        catalogue=catalogue,
        rate=rate,
        pricer=Pricer.from_settings(rate.current, settings.pricing),
        http=http,
        wallet=wallet,
        payments=Payments(ledger, wallet, settings.cashu.mints, keys),
        lightning=lightning,
        refunds=Refunds(db, ledger, lightning),
        autopay=EarningsAutopay(settings.lightning, ledger, lightning),
        nostr=nostr,
        monitor=monitor,
        stored=StoredObjects(db, ledger.commits),
        memory=Memory(db),
        metrics=metrics,
        limiter=limiter,
        admin=AdminAuth(db),
        records=records,
        keys=keys,
    )
    records.coster = _upstream_coster(parts)
    keys.names_of = lambda model: parts.catalogue.names_of(model)  # the catalogue in use
    return parts


def _open_books(
    settings: Settings, limiter: Limiter | None, checkpoint: cashu.Checkpoint | None
) -> tuple[Store, Ledger, Records]:
    """The database, its ledger and request records, with the reservations a previous run
    left settled."""
    db = open_database(settings)
    ledger = Ledger(db)
    if limiter is not None:
        _share_limits(limiter, ledger, settings)
    records = Records(db, settings.accounts.history_days, checkpoint)
    # Orphans settle before there is a catalogue: what their upstream billed, from the charge.
    fee, markup = settings.pricing.request_fee_msat, exact(settings.pricing.markup)
    records.coster = lambda r: from_charge(r.cost_msat, fee, markup)
    orphans = ledger.resolve_orphans(records.orphan)
    if orphans:
        log.warning("settled %d reservation(s) left by a previous run", orphans)
    return db, ledger, records


def _upstream_coster(parts: Parts) -> Callable[[Record], int]:
    """What the upstream billed for a record's request, by the parts in use at its write."""
    costs = UpstreamCost(lambda: parts.catalogue, lambda: parts.pricer)

    def cost(r: Record) -> int:
        usage = Usage(r.prompt_tokens, r.completion_tokens, r.cached_tokens, r.reasoning_tokens)
        return costs.msat(r.model, usage, r.cost_msat)

    return cost


def _lightning(
    settings: Settings, ledger: Ledger, wallet: cashu.Wallet, http: aiohttp.ClientSession
) -> Lightning:
    lightning = Lightning(settings.lightning, settings.cashu.mints, ledger, wallet, http)
    lightning.accept_foreign = settings.cashu.accept_foreign
    return lightning


async def close_parts(parts: Parts) -> None:
    await parts.monitor.stop()
    await parts.nostr.stop()  # the admin may have replaced them
    await parts.rate.stop()
    await parts.http.close()
    await parts.ledger.commits.flush()  # writes of requests cut short by the shutdown
    parts.db.close()


async def keep_up(parts: Parts) -> None:
    """Finish swaps and payouts a previous run left pending, then keep finishing those a mint
    left in doubt while the node runs (a lost or late answer), so none waits for a restart.
    With several instances: also settle what one that died left, and let another announce."""
    while True:
        # Each step guarded on its own: a bug, a database hiccup or a mint that is down must
        # neither end this task for good nor keep the other steps from running.
        try:
            await parts.wallet.recover()
        except cashu.WalletError as exc:
            log.warning("wallet recovery incomplete (%s)", exc)
        except Exception:
            log.exception("wallet recovery failed; trying again in %.0f s", RECOVERY_RETRY_S)
        try:
            _settle_orphans_and_announce(parts)
        except Exception:
            log.exception("settling orphans failed; trying again in %.0f s", RECOVERY_RETRY_S)
        try:
            parts.records.purge()
        except Exception:
            log.exception("purging old request records failed; trying again later")
        await asyncio.sleep(RECOVERY_RETRY_S)


async def watch_invoices(parts: Parts) -> None:
    """Settle the node's open Lightning invoices every `[lightning] watch_interval_s` (one
    paid while no client polls is credited all the same), pay the refunds due on expiry and,
    past its threshold, the operator's earnings. Each step is guarded on its own: a mint that
    fails one does not hold up the others."""
    while True:
        await asyncio.sleep(parts.settings.lightning.watch_interval_s)
        credited = await _guarded("watching invoices", parts.lightning.watch())
        if credited:
            log.info("credited %d paid Lightning invoice(s)", credited)
        refunded = await _guarded("paying refunds on expiry", parts.refunds.pay_due())
        if refunded:
            log.info("paid %d refund(s) on expiry to Lightning", refunded)
        await _guarded("paying earnings to Lightning", parts.autopay.run())


async def _guarded(what: str, step: Awaitable[T]) -> T | None:
    try:
        return await step
    except Exception:
        log.exception("%s failed; trying again", what)
        return None


def _settle_orphans_and_announce(parts: Parts) -> None:
    orphans = parts.ledger.resolve_orphans(parts.records.orphan)
    if orphans:
        log.warning("settled %d reservation(s) of a node instance that stopped", orphans)
    wants = parts.settings.nostr.announce and not parts.nostr.announcing
    if wants and parts.db.try_singleton(ANNOUNCER):
        parts.nostr.begin_announcing()
