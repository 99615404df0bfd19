"""The BTC/USD rate: fixed from `[pricing].btc_usd`, or live from several exchanges.

Live mode asks every configured exchange at once, each call bounded by a short timeout, and keeps
the median of the answers that came back (exact `Fraction`s, so one wrong or stale exchange cannot
move the price). A background task refreshes it; requests only read the cached value, so the
request path never waits on an exchange. When refreshes fail, the last good rate is used for a
bounded grace period (`max_age_s`); after that `current()` raises `NoRate` (a 503): nothing is
ever charged at a made-up rate.

A source is a URL; its answer's shape comes from the exchange's host name, or from the URL's
fragment when the host says nothing (`http://127.0.0.1:9000/ticker#kraken`). The fragment is
never sent. Unknown hosts without a fragment are read by trying every known shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from node.errors import ServiceUnavailable
from node.settings.money import PricingSection

log = logging.getLogger(__name__)

DEFAULT_SOURCES = (
    "https://api.kraken.com/0/public/Ticker?pair=XBTUSD",
    "https://api.coinbase.com/v2/prices/BTC-USD/spot",
    "https://www.bitstamp.net/api/v2/ticker/btcusd/",
    "https://api.gemini.com/v1/pubticker/btcusd",
    "https://api-pub.bitfinex.com/v2/ticker/tBTCUSD",
)

# Anything outside this band is a broken feed (an inverted pair, cents, a test value), not a price.
PLAUSIBLE_USD = (Fraction(1_000), Fraction(100_000_000))
MAX_BODY_BYTES = 256 * 1024


class NoRate(ServiceUnavailable):
    """No BTC/USD rate can be had: paid requests get a 503 and nothing is charged."""

    default_code = "no_btc_rate"


class _BadAnswer(ValueError):
    """An exchange answered, but not with a usable price."""


def _dig(payload: Any, *path: str | int) -> Any:
    for key in path:
        try:
            payload = payload[key]
        except (KeyError, IndexError, TypeError) as exc:
            raise _BadAnswer(f"no {key!r} in the answer") from exc
    return payload


def _kraken(payload: Any) -> Any:
    if _dig(payload, "error"):
        raise _BadAnswer(f"exchange error {payload['error']!r}")
    pairs = _dig(payload, "result")
    if not isinstance(pairs, dict) or len(pairs) != 1:
        raise _BadAnswer("expected exactly one pair in 'result'")
    return _dig(next(iter(pairs.values())), "c", 0)  # "c": last trade [price, volume]


def _coinbase(payload: Any) -> Any:
    data = _dig(payload, "data")
    if not isinstance(data, dict) or data.get("currency", "USD") != "USD":
        raise _BadAnswer("not a USD price")
    return _dig(data, "amount")


# Each parser returns the raw price value (string or number) found in the decoded JSON.
PARSERS: dict[str, Callable[[Any], Any]] = {
    "kraken": _kraken,
    "coinbase": _coinbase,
    "bitstamp": lambda p: _dig(p, "last"),  # also Gemini's pubticker
    "bitfinex": lambda p: _dig(p, 6),  # v2 ticker array: index 6 is LAST_PRICE
    "mempool": lambda p: _dig(p, "USD"),  # mempool.space /api/v1/prices
    "price": lambda p: _dig(p, "price"),  # Binance ticker/price, Coinbase Exchange ticker, generic
}
HOST_FORMATS = {
    "kraken.com": "kraken",
    "coinbase.com": "coinbase",
    "bitstamp.net": "bitstamp",
    "gemini.com": "bitstamp",
    "bitfinex.com": "bitfinex",
    "mempool.space": "mempool",
    "binance.com": "price",
}


def source_format(source: str) -> tuple[str, str]:
    """(URL to fetch, format name) for a configured source; ValueError if it cannot be used."""
    url, _, fragment = source.partition("#")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"BTC rate source must be an http(s) URL: {source!r}")
    if fragment:
        if fragment not in PARSERS and fragment != "auto":
            raise ValueError(f"unknown BTC rate format {fragment!r}; known: {sorted(PARSERS)}")
        return url, fragment
    host = parts.hostname
    for domain, fmt in HOST_FORMATS.items():
        if host == domain or host.endswith("." + domain):
            return url, fmt
    return url, "auto"


def parse_price(fmt: str, payload: Any) -> Fraction:
    """The BTC price in USD from a decoded answer; _BadAnswer (a ValueError) when there is none."""
    if fmt == "auto":
        for parser in PARSERS.values():
            with contextlib.suppress(_BadAnswer):
                return parse_price_value(parser(payload))
        raise _BadAnswer("no known ticker shape")
    return parse_price_value(PARSERS[fmt](payload))


def parse_price_value(raw: Any) -> Fraction:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal):
        raise _BadAnswer(f"price is not a number: {raw!r}")
    try:
        value = Fraction(Decimal(str(raw)))
    except (ArithmeticError, ValueError) as exc:  # "abc", NaN, Infinity
        raise _BadAnswer(f"price is not a number: {raw!r}") from exc
    low, high = PLAUSIBLE_USD
    if not low <= value <= high:
        raise _BadAnswer(f"implausible BTC price {raw!r}")
    return value


class BtcRate:
    """USD per BTC. Fixed, or the median of several exchanges refreshed in the background.

    `current()` is cheap and synchronous: it is what the request path calls.
    """

    def __init__(
        self,
        *,
        fixed: Fraction | None = None,
        sources: Sequence[str] = DEFAULT_SOURCES,
        refresh_s: float = 60.0,
        timeout_s: float = 5.0,
        max_age_s: float = 600.0,
        min_answers: int = 1,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if fixed is not None and fixed <= 0:
            raise ValueError("the fixed BTC rate must be positive")
        self.fixed = fixed
        self.sources = [source_format(s) for s in sources] if fixed is None else []
        if fixed is None and not self.sources:
            raise ValueError("no fixed BTC rate and no exchange to ask")
        self.refresh_s, self.timeout_s, self.max_age_s = refresh_s, timeout_s, max_age_s
        self.min_answers = max(1, min_answers)
        self._session, self._own_session = session, False
        self._clock = clock
        self._rate: Fraction | None = None
        self._at = 0.0
        self.answers = 0  # how many exchanges the current rate is the median of
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, pricing: PricingSection) -> BtcRate:
        if pricing.btc_usd is not None:
            return cls(fixed=Fraction(Decimal(str(pricing.btc_usd))))
        return cls(
            sources=pricing.btc_usd_sources or DEFAULT_SOURCES,
            refresh_s=pricing.btc_usd_refresh_s,
            timeout_s=pricing.btc_usd_timeout_s,
            max_age_s=pricing.btc_usd_max_age_s,
            min_answers=pricing.btc_usd_min_answers,
        )

    def current(self) -> Fraction:
        """USD per BTC now; NoRate when there is none fresh enough to charge by."""
        if self.fixed is not None:
            return self.fixed
        retry = {"Retry-After": str(max(1, round(self.refresh_s)))}
        if self._rate is None:
            raise NoRate("no BTC/USD rate yet: no exchange has answered", headers=retry)
        age = self.age_s()
        if age is not None and age > self.max_age_s:
            raise NoRate(
                f"the BTC/USD rate is {age:.0f} s old (limit {self.max_age_s:.0f} s): "
                "the exchanges cannot be reached",
                headers=retry,
            )
        return self._rate

    def age_s(self) -> float | None:
        """Seconds since the live rate was last fetched (None: fixed, or never fetched)."""
        if self.fixed is not None or self._rate is None:
            return None
        return self._clock() - self._at

    async def refresh(self) -> Fraction | None:
        """Ask every exchange once; keep and return the median, or None if too few answered."""
        session = self._session_or_new()
        answers = await asyncio.gather(*(self._ask(session, url, fmt) for url, fmt in self.sources))
        prices = [price for price in answers if price is not None]
        if len(prices) < self.min_answers:
            log.warning(
                "BTC/USD: %d of %d exchanges answered, %d needed; keeping the last rate",
                len(prices),
                len(self.sources),
                self.min_answers,
            )
            return None
        self._rate, self._at, self.answers = statistics.median(prices), self._clock(), len(prices)
        return self._rate

    async def _ask(self, session: aiohttp.ClientSession, url: str, fmt: str) -> Fraction | None:
        host = urlsplit(url).netloc
        try:
            async with asyncio.timeout(self.timeout_s):
                async with session.get(url, headers={"Accept": "application/json"}) as resp:
                    if resp.status != 200:
                        raise _BadAnswer(f"HTTP {resp.status}")
                    body = await resp.content.read(MAX_BODY_BYTES + 1)
            if len(body) > MAX_BODY_BYTES:
                raise _BadAnswer("answer too large")
            # parse_float=Decimal: a JSON number is read as written, never through a float.
            return parse_price(fmt, json.loads(body, parse_float=Decimal))
        except TimeoutError:
            log.warning("BTC/USD from %s: no answer within %.1f s", host, self.timeout_s)
        except (aiohttp.ClientError, ValueError, UnicodeDecodeError) as exc:
            log.warning("BTC/USD from %s: %s", host, exc)
        return None

    def _session_or_new(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(self.timeout_s))
            self._own_session = True
        return self._session

    async def start(self) -> None:
        """First refresh (bounded by the timeout), then keep refreshing in the background."""
        if self.fixed is not None or self._task is not None:
            return
        await self.refresh()
        self._task = asyncio.create_task(self._refresh_forever(), name="btc-rate-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session, self._own_session = None, False

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
            except Exception:  # the loop must outlive any one bad round
                log.exception("BTC/USD refresh failed")
