"""Request rate limits per key, and per IP for calls that no known account pays for.

Each configured window (`[limits]` per_minute / per_hour / per_day; 0 = off) is a leaky bucket:
it holds `limit` requests and drains at `limit / period`, so a burst of `limit` passes at once
and the next request waits until one has drained. A request must fit in every window; a refused
request takes nothing. Every answer carries OpenAI's headers for the tightest window:

    x-ratelimit-limit-requests       the tightest window's size
    x-ratelimit-remaining-requests   requests left in it
    x-ratelimit-reset-requests       time until it is empty again, e.g. "1m30s"

and a refusal is a 429 in the error envelope with `Retry-After` (seconds) and `retry-after-ms`.

Who is counted: a request whose Bearer / X-Cashu value belongs to an account is counted under
the SHA-256 of that value (the ledger's key hash; the raw secret is never kept). Any other
request — no credential, a new token, an unknown key — is counted under the client's IP, so
inventing keys does not buy more requests. Buckets live in process memory behind `RateStore`;
with several node instances on PostgreSQL they live in the database (`node.db.shared_state`), on the
wall clock, so a client gets one allowance whichever instance answers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from node.errors import RateLimited
from node.http.credentials import account_by_secret, credential
from node.http.metrics import Metrics
from node.http.web import check_credential_headers
from node.money.ledger import Ledger
from node.settings.service import LimitsSection

EXEMPT_PATHS = frozenset({"/health", "/metrics"})  # for load balancers and scrapers
SWEEP_EVERY_S = 60.0
EPSILON = 1e-9  # float drain must not refuse a request that is due to the microsecond


@dataclass(frozen=True)
class Window:
    limit: int
    period_s: float

    @property
    def rate(self) -> float:
        return self.limit / self.period_s

    @property
    def name(self) -> str:
        return {60.0: "minute", 3600.0: "hour", 86400.0: "day"}.get(
            self.period_s, f"{self.period_s:g} s"
        )


def windows_from(limits: LimitsSection) -> list[Window]:
    pairs = [(limits.per_minute, 60.0), (limits.per_hour, 3600.0), (limits.per_day, 86400.0)]
    return [Window(limit, period) for limit, period in pairs if limit > 0]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    window: Window  # the tightest one (the refusing one, when refused)
    remaining: int
    reset_s: float  # until that window is empty again
    retry_after_s: float = 0.0

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit-requests": str(self.window.limit),
            "x-ratelimit-remaining-requests": str(self.remaining),
            "x-ratelimit-reset-requests": duration(self.reset_s),
        }


class RateStore(Protocol):
    def hit(self, key: str, now: float) -> Decision:
        """Count one request for `key` if every window has room; say what is left."""
        ...


def drained(windows: Sequence[Window], fill: Sequence[float], elapsed_s: float) -> list[float]:
    elapsed = max(0.0, elapsed_s)
    return [max(0.0, f - elapsed * w.rate) for f, w in zip(fill, windows, strict=True)]


def decide(windows: Sequence[Window], fill: list[float]) -> tuple[Decision, list[float]]:
    """One request against buckets filled so far: the decision and the fill to keep."""
    over = [
        (fill[i] + 1 - w.limit) / w.rate
        for i, w in enumerate(windows)
        if fill[i] + 1 > w.limit + EPSILON
    ]
    if over:
        blocking = max(range(len(windows)), key=lambda i: fill[i] + 1 - windows[i].limit)
        window = windows[blocking]
        return Decision(False, window, 0, fill[blocking] / window.rate, max(over)), fill
    fill = [f + 1 for f in fill]
    tightest = min(range(len(windows)), key=lambda i: windows[i].limit - fill[i])
    window = windows[tightest]
    remaining = max(0, math.floor(window.limit - fill[tightest] + EPSILON))
    return Decision(True, window, remaining, fill[tightest] / window.rate), fill


class MemoryRateStore:
    """Buckets in a dict, for one process. Idle buckets are swept once a minute."""

    def __init__(self, windows: Sequence[Window]) -> None:
        if not windows:
            raise ValueError("at least one window is needed")
        self.windows = list(windows)
        self._buckets: dict[str, tuple[float, list[float]]] = {}  # key -> (when, fill per window)
        self._swept = 0.0

    def hit(self, key: str, now: float) -> Decision:
        self._sweep(now)
        decision, fill = decide(self.windows, self._fill(key, now))
        self._buckets[key] = (now, fill)
        return decision

    def _fill(self, key: str, now: float) -> list[float]:
        when, fill = self._buckets.get(key, (now, [0.0] * len(self.windows)))
        return drained(self.windows, fill, now - when)

    def _sweep(self, now: float) -> None:
        if now - self._swept < SWEEP_EVERY_S:
            return
        self._swept = now
        idle = [key for key in self._buckets if not any(self._fill(key, now))]
        for key in idle:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


def duration(seconds: float) -> str:
    """OpenAI's reset format: "20ms", "1s", "6m0s", "1h2m5.5s"."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    seconds = math.ceil(seconds * 10) / 10
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.1f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    return f"{int(minutes)}m{text}" if minutes else text


@dataclass
class Limiter:
    store: RateStore
    ledger: Ledger | None = None  # which credentials open an account (set once it is built)
    clock: Callable[[], float] = time.monotonic
    unlimited_above_msat: int = 0  # keys holding this much are not limited (0: none)

    def bucket(self, request: web.Request) -> tuple[str, str]:
        """(scope, bucket key): a known account's key hash, else the client's IP."""
        secret = credential(request)
        if secret is not None and self.ledger is not None:
            key_hash, account_id = account_by_secret(request, self.ledger, secret)
            if account_id is not None:
                return "key", "key:" + key_hash
        return "ip", "ip:" + (request.remote or "unknown")

    def unlimited(self, request: web.Request) -> bool:
        """The request's key holds at least `unlimited_above_msat` (Botstrapp's unlimited
        mode, here automatic): it is not rate limited, and still pays for what it uses."""
        secret = credential(request)
        if not self.unlimited_above_msat or self.ledger is None or secret is None:
            return False
        account_id = account_by_secret(request, self.ledger, secret)[1]
        if account_id is None:
            return False
        return self.ledger.get(account_id).balance_msat >= self.unlimited_above_msat


DECISION = web.RequestKey("rate_decision", Decision)


def limiter_for(limits: LimitsSection) -> Limiter | None:
    """A limiter with the configured windows, in memory; None when every window is off."""
    windows = windows_from(limits)
    if not windows:
        return None
    return Limiter(MemoryRateStore(windows), unlimited_above_msat=limits.unlimited_above_msat)


def middleware(limiter: Limiter | None, metrics: Metrics) -> Middleware:
    """The rate-limit middleware (with no limiter, it only checks the credential headers)."""

    @web.middleware
    async def ratelimit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        check_credential_headers(request)  # the limiter is the first to read them; on or off
        if limiter is None or request.path in EXEMPT_PATHS:
            return await handler(request)
        scope, key = limiter.bucket(request)
        if scope == "key" and limiter.unlimited(request):
            return await handler(request)
        decision = limiter.store.hit(key, limiter.clock())
        request[DECISION] = decision
        if not decision.allowed:
            metrics.rate_limited.labels(scope).inc()
            raise _refusal(decision, scope)
        return await handler(request)

    return ratelimit_middleware


def _refusal(decision: Decision, scope: str) -> RateLimited:
    wait = decision.retry_after_s
    return RateLimited(
        f"rate limit reached: {decision.window.limit} requests per {decision.window.name}"
        f" for this {'key' if scope == 'key' else 'address'}; retry in {math.ceil(wait)} s",
        headers={
            "Retry-After": str(max(1, math.ceil(wait))),
            "retry-after-ms": str(math.ceil(wait * 1000)),
        },
    )


async def _add_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
    decision = request.get(DECISION)
    if decision is not None:
        for name, value in decision.headers().items():
            response.headers.setdefault(name, value)


def setup(app: web.Application, limiter: Limiter | None) -> None:
    """OpenAI's rate-limit headers on every answer, when a limiter is on."""
    if limiter is not None:
        app.on_response_prepare.append(_add_headers)
