"""Settings changed by the operator: redacted for reading, validated, persisted, applied live.

The file (and NUTGATE_* variables) seed the settings; the operator's changes are stored in
`admin_settings` and laid over them at every start (`with_overrides`), so they win over the file.
All apply live but `[limits]`: the rate limiter and the HTTP server read those at start.
Environment variables still win over both, as they win over the file.

Secrets (`node.admin_password`, `nostr.nsec`, each upstream's `api_key`) are write-only: reads
show `<name>_set: true|false` in their place, and a write that leaves one out keeps it. The
database URL is shown with its password (user part or query) as `***`; it is read at start. The
admin password is changed only through /admin/api/password, which asks for the current one.
An upstream's key is kept only where it was meant to go: a change of its `base_url` must carry
the key again (`key_follows_url`), or an admin session could send the key to any address.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from pydantic import ValidationError

from node.admin import tables
from node.db.open import open_store
from node.db.store import Store
from node.errors import BadRequest
from node.money.payments import Payments
from node.nostr.keys import Announcement
from node.parts import VERSION, Parts, build_wallet, start_nostr
from node.pricing.btc_rate import BtcRate
from node.pricing.catalogue import Catalogue
from node.pricing.prices import Pricer
from node.proxy.providers import ProviderMonitor
from node.settings import ConfigError, Settings, load_settings
from node.settings.money import PricingSection

log = logging.getLogger("nutgate.admin")

LIST_SECTIONS = ("upstreams", "models")
TABLE_SECTIONS = ("node", "store", "cashu", "pricing", "limits", "nostr")
SECRETS = {"node": "admin_password", "nostr": "nsec"}
UPSTREAM_SECRET = "api_key"
# Read once at start, before the database is even open: changed in the file only.
STARTUP_ONLY = {"node": {"data_dir", "host", "port"}, "store": {"url"}}
NEXT_START = {"limits"}  # stored and shown at once; the rate limiter and server read it at start
RATE_FIELDS = [f for f in PricingSection.model_fields if f.startswith("btc_usd")]
HIDDEN = "***"


def redacted(settings: Settings) -> dict[str, Any]:
    """The settings in the file's structure, with every secret replaced by `<name>_set`."""
    data = settings.model_dump(mode="json")
    for section, key in SECRETS.items():
        data[section][f"{key}_set"] = bool(data[section].pop(key))
    for upstream in data["upstreams"]:
        upstream[f"{UPSTREAM_SECRET}_set"] = bool(upstream.pop(UPSTREAM_SECRET))
    data["store"]["url"] = without_password(data["store"]["url"])
    return data


def without_password(url: str) -> str:
    """A database URL as shown: a password in its user part or its query as `***`."""
    parts = urlsplit(url)
    netloc, query = parts.netloc, parts.query
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:{HIDDEN}@{host}"
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(k == "password" for k, _ in pairs):
        shown = [(k, HIDDEN if k == "password" else v) for k, v in pairs]
        query = urlencode(shown, safe="*")
    return parts._replace(netloc=netloc, query=query).geturl()


def _as_shown(section: str, key: str, value: Any) -> str:
    return without_password(str(value)) if (section, key) == ("store", "url") else str(value)


def with_overrides(settings: Settings) -> Settings:
    """At start: the operator's stored changes laid over the file's settings."""
    db = open_store(settings.store.url, settings.database_path, {"admin": tables.MIGRATIONS})
    try:
        overrides = tables.load_overrides(db)
    finally:
        db.close()
    if not overrides:
        return settings
    data = settings.model_dump()
    for section, value in overrides.items():
        if section in LIST_SECTIONS:
            data[section] = value
        elif section in data:
            data[section].update(value)
    try:
        return load_settings(None, **data)
    except ConfigError as exc:
        # Starting on the file alone beats not starting: the operator can fix it in /admin.
        log.error("settings changed in /admin no longer fit the file; ignored: %s", exc)
        return settings


async def update_settings(parts: Parts, patch: dict[str, Any]) -> Settings:
    """Validate a partial of the file's structure, apply it live, then persist it."""
    data = parts.settings.model_dump()
    patched: dict[str, Any] = {}
    for section, value in patch.items():
        if section in LIST_SECTIONS:
            data[section] = _merge_list(section, value, data[section])
        elif section in TABLE_SECTIONS:
            changes = _table_changes(section, value, data[section])
            data[section].update(changes)
            patched[section] = set(changes)
        else:
            raise BadRequest(f"unknown settings section {section!r}", param=section)
    new = validate(data)
    await apply_settings(parts, new)
    tables.save_overrides(parts.db, _overrides(parts.db, new, patch, patched))
    return new


def validate(data: dict[str, Any]) -> Settings:
    try:
        return load_settings(None, **data)  # refuses inf, NaN and prices past MAX_PRICE_USD too
    except ConfigError as exc:
        cause = exc.__cause__
        if isinstance(cause, ValidationError):
            err = cause.errors()[0]
            param = ".".join(str(part) for part in err["loc"])
            raise BadRequest(
                f"{param}: {err['msg']}", param=param, code="invalid_setting"
            ) from None
        param = str(exc).split(":", 1)[0]
        raise BadRequest(str(exc), param=param, code="invalid_setting") from None


def _table_changes(section: str, value: Any, current: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{section} must be an object", param=section)
    changes = {k: v for k, v in value.items() if not _is_marker(section, k)}
    if "admin_password" in changes and section == "node":
        raise BadRequest(
            "node.admin_password: change it with POST /admin/api/password (needs the current one)",
            param="node.admin_password",
        )
    for key in STARTUP_ONLY.get(section, ()):
        if key not in changes:
            continue
        if str(changes[key]) in (str(current[key]), _as_shown(section, key, current[key])):
            del changes[key]  # sent back as read: no change, nothing to store
            continue
        raise BadRequest(
            f"{section}.{key} is read at start: change it in the configuration file",
            param=f"{section}.{key}",
        )
    return changes


def _is_marker(section: str, key: str) -> bool:
    secret = SECRETS.get(section)
    return secret is not None and key == f"{secret}_set"


def _merge_list(section: str, value: Any, current: list[dict[str, Any]]) -> list[Any]:
    if not isinstance(value, list):
        raise BadRequest(f"{section} must be a list", param=section)
    if section != "upstreams":
        return value
    by_name = {u["name"]: u for u in current}
    merged: list[Any] = []
    for i, entry in enumerate(value):
        if isinstance(entry, dict):
            entry = {k: v for k, v in entry.items() if k != f"{UPSTREAM_SECRET}_set"}
            old = by_name.get(entry.get("name"))
            if old is not None:
                key_follows_url(entry, old, f"upstreams.{i}.{UPSTREAM_SECRET}")
                entry.setdefault(UPSTREAM_SECRET, old[UPSTREAM_SECRET])  # left out = kept
        merged.append(entry)
    return merged


def key_follows_url(change: dict[str, Any], current: dict[str, Any], param: str) -> None:
    """Refuse a change of an upstream's base_url that leaves its (set) key to be kept: the key
    was given for the old address, and only someone who knows it may send it elsewhere."""
    if UPSTREAM_SECRET in change or not current[UPSTREAM_SECRET] or "base_url" not in change:
        return
    if str(change["base_url"]).rstrip("/") != str(current["base_url"]).rstrip("/"):
        raise BadRequest(
            f"{param}: a new base_url needs the upstream's api_key again, in the same change",
            param=param,
            code="api_key_required",
        )


def _overrides(
    db: Store, new: Settings, patch: dict[str, Any], patched: dict[str, set[str]]
) -> dict[str, Any]:
    """What to store: validated values of the keys patched, merged into earlier overrides."""
    earlier = tables.load_overrides(db)
    dumped = new.model_dump(mode="json")
    result: dict[str, Any] = {}
    for section in patch:
        if section in LIST_SECTIONS:
            result[section] = dumped[section]
        else:
            keys = patched[section]
            result[section] = {**earlier.get(section, {}), **{k: dumped[section][k] for k in keys}}
    return result


async def apply_settings(parts: Parts, new: Settings) -> None:
    """Make `new` the node's settings: build what depends on them, then swap it all at once.

    Anything that can fail is built before the swap, so a refused change leaves the node as
    it was. Requests already running finish with the parts they started with.
    """
    old = parts.settings
    try:
        nostr = start_nostr(new, parts.db) if new.nostr != old.nostr else parts.nostr
    except ConfigError as exc:
        raise BadRequest(str(exc), param="nostr.nsec", code="invalid_setting") from None
    rate = parts.rate
    if _rate_changed(old.pricing, new.pricing):
        rate = BtcRate.from_settings(new.pricing)
        await rate.start()
    wallet, payments = parts.wallet, parts.payments
    if new.cashu != old.cashu:  # payments follow the wallet and the mints it trusts
        old_wallet = parts.wallet
        events, checkpoint = old_wallet.events, old_wallet.checkpoint
        wallet = build_wallet(new, parts.db, parts.ledger, parts.http, events, checkpoint)
        payments = Payments(parts.ledger, wallet, new.cashu.mints, parts.keys, parts.payments)
    catalogue, monitor = await _catalogue_and_monitor(parts, new)
    old_rate, old_nostr, old_monitor = parts.rate, parts.nostr, parts.monitor
    parts.settings = new
    parts.records.history_days = new.accounts.history_days
    parts.catalogue, parts.monitor = catalogue, monitor
    parts.pricer = Pricer.from_settings(rate.current, new.pricing)
    parts.rate, parts.wallet, parts.payments, parts.nostr = rate, wallet, payments, nostr
    nostr.update(Announcement.from_settings(new, VERSION))
    if monitor is not old_monitor:
        await old_monitor.stop()
    if rate is not old_rate:
        await old_rate.stop()
    if nostr is not old_nostr:
        await old_nostr.stop()
        await nostr.start()


async def _catalogue_and_monitor(parts: Parts, new: Settings) -> tuple[Catalogue, ProviderMonitor]:
    """The new catalogue keeps the upstreams' listings; the monitor fills the new catalogue from
    now on (a new one, with the health known so far, when the upstreams changed)."""
    catalogue = parts.catalogue.rebuilt(new)
    if new.upstreams == parts.settings.upstreams:
        parts.monitor.catalogue = catalogue
        return catalogue, parts.monitor
    monitor = ProviderMonitor(new.upstreams, catalogue, parts.http)
    monitor.status.update({k: v for k, v in parts.monitor.status.items() if k in monitor.status})
    await monitor.start()  # lists the new upstreams' models before they are sold
    return catalogue, monitor


def _rate_changed(old: PricingSection, new: PricingSection) -> bool:
    return any(getattr(old, f) != getattr(new, f) for f in RATE_FIELDS)
