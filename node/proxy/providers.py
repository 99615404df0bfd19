"""The upstream providers' state, kept current in the background.

For each upstream, two loops: a health check (GET /models, every `health_interval_s`) that sets
its status, and — when `list_models` is on — a refresh of its model list into the catalogue
(every `models_refresh_s`; the first one is awaited at start, so listed models are there from
the first request). Requests read the state; they never wait on these loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from enum import StrEnum

import aiohttp

from node.pricing.catalogue import Catalogue
from node.pricing.model import Route
from node.pricing.sources import CatalogueError, fetch_catalogue
from node.proxy import upstream as upstream_calls
from node.settings.catalogue import UpstreamSection

log = logging.getLogger(__name__)

FIRST_LISTING_TIMEOUT_S = 15.0


class Status(StrEnum):
    UNKNOWN = "unknown"  # not checked yet
    ACTIVE = "active"
    DOWN = "down"


class ProviderMonitor:
    def __init__(
        self,
        upstreams: list[UpstreamSection],
        catalogue: Catalogue,
        session: aiohttp.ClientSession,
    ):
        self.upstreams = upstreams
        self.catalogue = catalogue
        self.session = session
        self.status: dict[str, Status] = {u.name: Status.UNKNOWN for u in upstreams}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        listed = [u for u in self.upstreams if u.list_models]
        await asyncio.gather(*(self._refresh_listing(u) for u in listed))
        for up in self.upstreams:
            self._tasks.append(self._loop(up.health_interval_s, self._check, up))
        for up in listed:
            self._tasks.append(self._loop(up.models_refresh_s, self._refresh_listing, up, True))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def _loop(
        self,
        interval: float,
        step: Callable[[UpstreamSection], Awaitable[None]],
        up: UpstreamSection,
        wait_first: bool = False,
    ) -> asyncio.Task[None]:
        async def run() -> None:
            if wait_first:
                await asyncio.sleep(interval)
            while True:
                try:
                    await step(up)
                except Exception:  # a bug here must not end the loop for good
                    log.exception("upstream %s: background step failed", up.name)
                await asyncio.sleep(interval)

        return asyncio.create_task(run(), name=f"upstream-{up.name}")

    async def _check(self, up: UpstreamSection) -> None:
        status = Status.ACTIVE if await upstream_calls.healthy(self.session, up) else Status.DOWN
        if status != self.status.get(up.name):
            log.info("upstream %s is %s", up.name, status)
        self.status[up.name] = status

    async def _refresh_listing(self, up: UpstreamSection, quiet: bool = False) -> None:
        try:
            entries = await fetch_catalogue(
                self.session,
                up.base_url,
                api_key=up.api_key,
                timeout_s=min(FIRST_LISTING_TIMEOUT_S, up.first_byte_timeout_s),
                anthropic_version=up.anthropic_version if up.kind == "anthropic" else None,
            )
        except CatalogueError as exc:
            log.warning("upstream %s: model list not refreshed: %s", up.name, exc)
            return
        self.catalogue.set_listing(up.name, entries)

    def order(self, routes: Iterable[Route]) -> list[Route]:
        """Failover order: as configured, but upstreams known to be down go last."""
        return sorted(routes, key=lambda r: self.status.get(r.upstream.name) == Status.DOWN)
