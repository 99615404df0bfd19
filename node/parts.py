"""The node's parts and their builders: the database, the wallet, Nostr, the keep-up loop.

`create_app` (node.app) builds the parts at start with these; the admin builds some again
when the operator changes the settings they depend on (node.admin.config).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import time

from aiohttp import web

import wallet as cashu
from node.admin import tables as admin_tables
from node.context import Node
from node.db import shared_state as shared
from node.db.open import open_store
from node.db.store import Store
from node.http import ratelimit
from node.money import ledger as ledger_module
from node.money.books import LedgerHooks
from node.money.ledger import Ledger
from node.nostr.keys import Announcement, NostrKeyError, load_or_create_keys
from node.nostr.service import NostrService
from node.proxy import stored
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
            "admin": admin_tables.MIGRATIONS,
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
