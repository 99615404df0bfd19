"""The BTC/USD rate: fixed, or the median of live exchanges (fake ones on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from fractions import Fraction

import pytest

from node.errors import ServiceUnavailable
from node.pricing.btc_rate import BtcRate, NoRate, parse_price, source_format
from node.settings.money import PricingSection
from tests.support.fake_exchanges import SHAPES, FakeExchange, down_url

Exchanges = Callable[..., Awaitable[FakeExchange]]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def exchange() -> AsyncIterator[Exchanges]:
    started: list[FakeExchange] = []

    async def make(
        shape: str = "price", price: str = "100000", behaviour: str = "ok"
    ) -> FakeExchange:
        started.append(await FakeExchange(shape, price, behaviour).start())
        return started[-1]

    yield make
    for ex in started:
        await ex.stop()


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_each_known_ticker_shape_gives_the_exact_price(shape: str) -> None:
    url, fmt = source_format(f"http://127.0.0.1:1/ticker#{shape}")
    assert (url, fmt) == ("http://127.0.0.1:1/ticker", shape)
    assert parse_price(fmt, SHAPES[shape]("97123")) == 97123
    assert parse_price("auto", SHAPES[shape]("97123")) == 97123


def test_decimal_prices_are_exact_not_floats() -> None:
    assert parse_price("price", {"price": "97123.45"}) == Fraction(9712345, 100)
    assert parse_price("price", {"price": Decimal("0.1") + 97000}) == Fraction(970001, 10)


@pytest.mark.parametrize(
    "answer",
    [
        {"price": "abc"},
        {"price": "NaN"},
        {"price": None},
        {"price": True},
        {"price": "0.00001"},
        {"price": "-97000"},
        {"nothing": 1},
        [],
        "97000",
    ],
)
def test_wrong_answers_are_refused(answer: object) -> None:
    with pytest.raises(ValueError):
        parse_price("price", answer)


def test_kraken_error_and_coinbase_non_usd_are_refused() -> None:
    with pytest.raises(ValueError):
        parse_price("kraken", {"error": ["EQuery:Unknown asset pair"], "result": {}})
    with pytest.raises(ValueError):
        parse_price("coinbase", {"data": {"amount": "90000", "currency": "EUR"}})


def test_formats_come_from_the_exchange_host() -> None:
    assert source_format("https://api.kraken.com/0/public/Ticker?pair=XBTUSD")[1] == "kraken"
    assert source_format("https://api.coinbase.com/v2/prices/BTC-USD/spot")[1] == "coinbase"
    assert source_format("https://www.bitstamp.net/api/v2/ticker/btcusd/")[1] == "bitstamp"
    assert source_format("https://api-pub.bitfinex.com/v2/ticker/tBTCUSD")[1] == "bitfinex"
    assert source_format("https://rates.example/btc")[1] == "auto"
    with pytest.raises(ValueError):
        source_format("https://rates.example/btc#nosuchformat")
    with pytest.raises(ValueError):
        source_format("ftp://rates.example/btc")


def test_a_fixed_rate_needs_no_exchange() -> None:
    rate = BtcRate.from_settings(PricingSection(btc_usd=100000.0))
    assert rate.current() == 100000
    assert rate.sources == []
    assert BtcRate.from_settings(PricingSection(btc_usd=97123.45)).current() == Fraction(
        9712345, 100
    )


def test_no_rate_before_any_exchange_answered_is_a_503() -> None:
    rate = BtcRate(sources=[down_url()])
    with pytest.raises(NoRate) as caught:
        rate.current()
    assert isinstance(caught.value, ServiceUnavailable)
    assert caught.value.status == 503
    assert caught.value.code == "no_btc_rate"
    assert "Retry-After" in caught.value.headers


async def test_median_of_three_exchanges(exchange: Exchanges) -> None:
    sources = [
        (await exchange("kraken", "99000")).url,
        (await exchange("coinbase", "100000.5")).url,
        (await exchange("bitstamp", "103000")).url,
    ]
    rate = BtcRate(sources=sources, timeout_s=2)
    try:
        assert await rate.refresh() == Fraction(200001, 2)
        assert rate.current() == Fraction("100000.5")
        assert rate.answers == 3
    finally:
        await rate.stop()


async def test_one_down_one_slow_one_garbage_still_priced_in_time(exchange: Exchanges) -> None:
    sources = [
        (await exchange("kraken", "100000")).url,
        (await exchange("bitfinex", "100002")).url,
        (await exchange("price", "1", behaviour="slow")).url,
        (await exchange("coinbase", "1", behaviour="garbage")).url,
        (await exchange("price", "1", behaviour="error")).url,
        down_url(),
    ]
    rate = BtcRate(sources=sources, timeout_s=0.5)
    try:
        started = time.monotonic()
        assert await rate.refresh() == 100001  # the median of the two that answered
        assert time.monotonic() - started < 2  # the slow one did not hold the round up
        assert rate.answers == 2
    finally:
        await rate.stop()


async def test_all_down_keeps_the_last_rate_for_the_grace_period_only(
    exchange: Exchanges,
) -> None:
    ex = await exchange("price", "100000")
    clock = FakeClock()
    rate = BtcRate(sources=[ex.url, down_url()], timeout_s=0.5, max_age_s=600, clock=clock)
    try:
        assert await rate.refresh() == 100000
        await ex.stop()  # now every exchange is down
        clock.now += 590
        assert await rate.refresh() is None
        assert rate.current() == 100000  # still within the grace period
        clock.now += 20
        with pytest.raises(NoRate, match="old"):
            rate.current()
    finally:
        await rate.stop()


async def test_too_few_answers_keep_the_previous_rate(exchange: Exchanges) -> None:
    good = await exchange("price", "100000")
    other = await exchange("price", "100000")
    rate = BtcRate(sources=[good.url, other.url], timeout_s=0.5, min_answers=2)
    try:
        assert await rate.refresh() == 100000
        good.price, other.behaviour = "120000", "garbage"
        assert await rate.refresh() is None
        assert rate.current() == 100000
    finally:
        await rate.stop()


async def test_background_refresh_follows_the_market_and_stops(exchange: Exchanges) -> None:
    ex = await exchange("mempool", "100000")
    rate = BtcRate(sources=[ex.url], refresh_s=0.05, timeout_s=0.5)
    await rate.start()
    try:
        assert rate.current() == 100000  # start() waited for the first round
        ex.price = "90000"
        for _ in range(100):
            if rate.current() == 90000:
                break
            await asyncio.sleep(0.02)
        assert rate.current() == 90000
    finally:
        await rate.stop()
    hits = ex.hits
    await asyncio.sleep(0.2)
    assert ex.hits == hits  # no refresh after stop()
