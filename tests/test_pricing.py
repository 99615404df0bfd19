"""The msat cost formula: exact, rounded up, with markup, fee and minimum."""

from __future__ import annotations

from fractions import Fraction
from typing import TypedDict, Unpack

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.pricing.btc_rate import NoRate
from node.pricing.prices import Price, Pricer, Usage


class Options(TypedDict, total=False):
    markup: float
    request_fee_msat: int
    min_charge_msat: int


def pricer(**kwargs: Unpack[Options]) -> Pricer:
    return Pricer(rate=lambda: Fraction(100_000), **kwargs)


def test_contract_example_is_2000_msat() -> None:
    assert pricer().cost_msat(Price.per_million(1, 2), Usage(1000, 500)) == 2000


def test_rounds_up_to_the_next_msat() -> None:
    # 1 token at $0.15/Mtok = 0.15 msat at $100k/BTC -> 1 msat
    assert pricer().cost_msat(Price.per_million("0.15", 0), Usage(1, 0)) == 1
    assert pricer().cost_msat(Price.per_million("0.15", 0), Usage(20, 0)) == 3


def test_markup_fee_and_minimum() -> None:
    price = Price.per_million(1, 2)
    assert pricer(markup=1.5).cost_msat(price, Usage(1000, 500)) == 3000
    assert pricer(request_fee_msat=7).cost_msat(price, Usage(1000, 500)) == 2007
    assert pricer(min_charge_msat=5000).cost_msat(price, Usage(1000, 500)) == 5000


def test_cached_and_reasoning_tokens_have_their_own_prices() -> None:
    price = Price(
        prompt=Fraction(1, 10**6),
        completion=Fraction(2, 10**6),
        cached_prompt=Fraction(1, 10**7),
        reasoning=Fraction(4, 10**6),
    )
    usage = Usage(
        prompt_tokens=1000, completion_tokens=500, cached_tokens=600, reasoning_tokens=100
    )
    # 400×1 + 600×0.1 + 400×2 + 100×4 = 1660 µUSD -> 1660 msat at $100k/BTC
    assert pricer().cost_msat(price, usage) == 1660


def test_usage_is_read_from_openai_shapes() -> None:
    usage = Usage.from_openai(
        {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 2},
        }
    )
    assert usage == Usage(10, 5, 4, 2)
    assert Usage.from_openai({"input_tokens": 3, "output_tokens": 1}) == Usage(3, 1)
    assert Usage.from_openai({"prompt_tokens": -3}) is None
    assert Usage.from_openai("nonsense") is None


def test_no_rate_means_no_price() -> None:
    def no_rate() -> Fraction:
        raise NoRate("none")

    with pytest.raises(NoRate):
        Pricer(rate=no_rate).cost_msat(Price.per_million(1, 2), Usage(1, 1))


@given(st.integers(0, 10**7), st.integers(0, 10**7), st.integers(0, 10**6))
def test_cost_is_never_negative_and_monotone(prompt: int, completion: int, more: int) -> None:
    p = pricer(request_fee_msat=3)
    price = Price.per_million("0.15", "0.6")
    cost = p.cost_msat(price, Usage(prompt, completion))
    assert cost >= 3
    assert p.cost_msat(price, Usage(prompt + more, completion)) >= cost
    assert p.cost_msat(price, Usage(prompt, completion + more)) >= cost


@given(st.integers(0, 10**6), st.integers(0, 10**8))
def test_affordable_tokens_are_really_affordable(prompt: int, msat: int) -> None:
    p = pricer(request_fee_msat=5)
    price = Price.per_million("0.15", "0.6")
    n = p.completion_tokens_affordable(price, prompt, msat)
    if n >= 0:
        assert p.cost_msat(price, Usage(prompt, n)) <= msat
        assert p.cost_msat(price, Usage(prompt, n + 1)) > msat
