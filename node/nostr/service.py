"""NostrService: keeps the node's announcement on its relays and reads other nodes' announcements.

Nothing here makes a caller wait on a relay. `start()` only starts background tasks: one per
relay publishes the current announcement, retries a failure with exponential backoff (retry_min
doubling up to retry_max, with jitter), and re-publishes the same signed event every
`republish_interval` seconds so a relay that lost it gets it back; one more refreshes the list
of other nodes every `discover_interval` seconds, which `nodes()` returns at once.

    service = NostrService(keys, relays, announce=True)
    service.update(Announcement(...))   # first announcement; later calls publish replacements
    await service.start()
    service.nodes()                     # for GET /v1/nodes; `await discover()` forces a refresh
    await service.stop()

Relays are spoken to with short websocket conversations (node.nostr.wire), not nostr-sdk's
Client; see that module for why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from nostr_sdk import Event

from node.nostr.keys import (
    ANNOUNCEMENT_KIND,
    Announcement,
    NodeInfo,
    build_event,
    npub,
    select_nodes,
    validate_relay_url,
)
from node.nostr.wire import RelayError, publish, query

log = logging.getLogger(__name__)

DISCOVERY_LIMIT = 500  # announcements asked of each relay


@dataclass
class _Relay:
    url: str
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    published_id: str = ""
    last_error: str = ""


class NostrService:
    def __init__(
        self,
        keys: Any,
        relays: Sequence[str],
        announce: bool,
        *,
        republish_interval: float = 3600.0,
        discover_interval: float = 600.0,
        retry_min: float = 2.0,
        retry_max: float = 300.0,
        timeout: float = 10.0,
    ) -> None:
        self._keys = keys
        self._announce = announce
        self._republish_interval = republish_interval
        self._discover_interval = discover_interval
        self._retry_min = retry_min
        self._retry_max = max(retry_max, retry_min)
        self._timeout = timeout
        self._relays: dict[str, _Relay] = {}
        for url in relays:
            try:
                normal = validate_relay_url(url)
            except ValueError as exc:
                log.warning("ignoring relay: %s", exc)
                continue
            self._relays.setdefault(normal, _Relay(normal))
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._announcement: Announcement | None = None
        self._event: Any = None
        self._created_at = 0
        self._nodes: list[NodeInfo] = []
        self._discover_lock = asyncio.Lock()

    @property
    def pubkey(self) -> str:
        return str(self._keys.public_key().to_hex())

    @property
    def npub(self) -> str:
        return npub(self._keys)

    @property
    def relays(self) -> list[str]:
        return list(self._relays)

    @property
    def event(self) -> Any:
        """The current signed announcement (an SDK `Event`), or None."""
        return self._event

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the background tasks and return at once (no relay is contacted here)."""
        if self._session is not None:
            return
        self._session = aiohttp.ClientSession(headers={"User-Agent": "nutgate"})
        if self._announce:
            for relay in self._relays.values():
                relay.wake.set()
                self._spawn(self._publisher(relay), f"nostr publish {relay.url}")
        if self._discover_interval > 0 and self._relays:
            self._spawn(self._refresher(), "nostr discovery")

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- announcing ------------------------------------------------------------------------

    @property
    def announcing(self) -> bool:
        return self._announce

    def begin_announcing(self) -> None:
        """Become the publisher: the node instance that was one has gone."""
        if self._announce:
            return
        self._announce = True
        if self._session is not None:
            for relay in self._relays.values():
                self._spawn(self._publisher(relay), f"nostr publish {relay.url}")
        announcement, self._announcement = self._announcement, None
        if announcement is not None:
            self.update(announcement)

    def update(self, announcement: Announcement) -> bool:
        """Make `announcement` current; publish a replacement if it differs. True if it did.

        Call from the event loop. Works before `start()` too (the first publish then waits for it).
        """
        if announcement == self._announcement:
            return False
        self._announcement = announcement
        if not self._announce:
            return True
        # created_at must grow, or a replacement within the same second could lose (NIP-01).
        self._created_at = max(int(time.time()), self._created_at + 1)
        self._event = build_event(self._keys, announcement, self._created_at)
        log.info("announcement %s: %r", self._event.id().to_hex(), announcement.name)
        for relay in self._relays.values():
            relay.wake.set()
        return True

    def status(self) -> dict[str, dict[str, Any]]:
        """Per relay: is the current announcement there, and the last error. For admin/health."""
        current = str(self._event.id().to_hex()) if self._event is not None else ""
        return {
            url: {
                "published": bool(current) and relay.published_id == current,
                "last_error": relay.last_error,
            }
            for url, relay in self._relays.items()
        }

    async def _publisher(self, relay: _Relay) -> None:
        while True:
            try:
                await asyncio.wait_for(relay.wake.wait(), self._republish_interval)
                due = False
            except TimeoutError:
                due = True  # periodic re-publish of the same event
            relay.wake.clear()
            try:
                await self._publish_until_accepted(relay, force=due)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not end publishing for good
                log.exception("nostr publisher for %s", relay.url)

    async def _publish_until_accepted(self, relay: _Relay, force: bool) -> None:
        delay = self._retry_min
        while True:
            event = self._event
            if event is None:
                return
            if not force and relay.published_id == str(event.id().to_hex()):
                return
            if await self._send(relay, event):
                return
            try:  # back off, but a new announcement is tried at once
                await asyncio.wait_for(relay.wake.wait(), delay * random.uniform(0.8, 1.2))
                relay.wake.clear()
                delay = self._retry_min
            except TimeoutError:
                delay = min(delay * 2, self._retry_max)

    async def _send(self, relay: _Relay, event: Any) -> bool:
        if self._session is None:
            return False
        event_id = str(event.id().to_hex())
        try:
            await publish(self._session, relay.url, str(event.as_json()), self._timeout)
        except RelayError as exc:
            return self._failed(relay, str(exc))
        if relay.published_id != event_id:
            log.info("announcement %s published on %s", event_id[:12], relay.url)
        relay.published_id = event_id
        relay.last_error = ""
        return True

    @staticmethod
    def _failed(relay: _Relay, reason: str) -> bool:
        if reason != relay.last_error:
            log.warning("relay %s: announcement not published: %s", relay.url, reason)
        relay.last_error = reason
        return False

    # -- discovery -------------------------------------------------------------------------

    def nodes(self, include_self: bool = False) -> list[NodeInfo]:
        """Other nodes as last discovered, newest first; never waits (for GET /v1/nodes)."""
        return self._nodes if include_self else [n for n in self._nodes if n.pubkey != self.pubkey]

    async def discover(self, include_self: bool = False) -> list[NodeInfo]:
        """Ask every relay now (in parallel, each within `timeout`); update and return `nodes()`.

        Events are parsed and checked here (select_nodes): id, signature, newest per
        (pubkey, d), a `u` present. If no relay answers, the previous list is kept.
        """
        async with self._discover_lock:
            answers = await asyncio.gather(*(self._query(url) for url in self._relays))
            if any(a is not None for a in answers):
                unique = {json.dumps(e, sort_keys=True) for a in answers for e in a or []}
                # ~0.5 ms an event (parse + Schnorr check): kept off the event loop
                self._nodes = await asyncio.to_thread(_select, unique)
        return self.nodes(include_self)

    async def _query(self, url: str) -> list[dict[str, Any]] | None:
        if self._session is None:
            return None
        kinds = {"kinds": [ANNOUNCEMENT_KIND]}
        try:
            return await query(self._session, url, kinds, DISCOVERY_LIMIT, self._timeout)
        except RelayError as exc:
            log.info("discovery on %s failed: %s", url, exc)
            return None

    async def _refresher(self) -> None:
        while True:
            try:
                await self.discover()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("nostr discovery")
            await asyncio.sleep(self._discover_interval)


def _select(raw_events: set[str]) -> list[NodeInfo]:
    """Parse relay JSON into SDK Events (malformed ones skipped), then select_nodes checks them."""
    events = []
    for raw in raw_events:
        try:
            events.append(Event.from_json(raw))
        except Exception:
            continue
    return select_nodes(events)
