"""Property tests: the token and payment-request parsers raise only TokenInvalid, whatever they
are fed; the cost function is never negative and never falls when tokens are added.
`make fuzz` raises the example count (NUTGATE_FUZZ_EXAMPLES)."""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
from collections.abc import Callable
from fractions import Fraction

import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wallet
from node.pricing.prices import Price, Pricer, Usage, exact

EXAMPLES = int(os.environ.get("NUTGATE_FUZZ_EXAMPLES", "8")) * 8
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
# plausible shapes, so the fuzzer gets past base64 and into field checks
PROOFISH = st.fixed_dictionaries(
    {"amount": JSONISH, "id": JSONISH, "secret": JSONISH, "C": JSONISH},
    optional={"dleq": JSONISH, "witness": JSONISH},
)
V3ISH = st.fixed_dictionaries(
    {"token": st.lists(st.fixed_dictionaries({"mint": JSONISH, "proofs": st.lists(PROOFISH)}))},
    optional={"unit": JSONISH, "memo": JSONISH},
)
V4ISH = st.fixed_dictionaries(
    {"m": JSONISH, "u": JSONISH, "t": st.lists(st.fixed_dictionaries({"i": JSONISH, "p": JSONISH}))}
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def only_token_invalid(parse: Callable[[str], object], text: str) -> None:
    with contextlib.suppress(wallet.TokenInvalid):
        parse(text)


@FUZZ
@given(st.text() | st.binary().map(lambda b: b.decode("latin-1")))
def test_parse_token_on_any_text(text: str) -> None:
    for candidate in (text, "cashuA" + text, "cashuB" + text):
        only_token_invalid(wallet.parse_token, candidate)


@FUZZ
@given(V3ISH | JSONISH)
def test_parse_token_on_any_v3_json(obj: object) -> None:
    only_token_invalid(wallet.parse_token, "cashuA" + b64(json.dumps(obj).encode()))


@FUZZ
@given(V4ISH | JSONISH, st.binary(max_size=8))
def test_parse_token_on_any_v4_cbor(obj: object, tail: bytes) -> None:
    try:
        data = cbor2.dumps(obj)
    except (TypeError, ValueError, OverflowError):
        return
    only_token_invalid(wallet.parse_token, "cashuB" + b64(data))
    only_token_invalid(wallet.parse_token, "cashuB" + b64(data + tail))


@FUZZ
@given(st.text(), JSONISH)
def test_parse_request_on_anything(text: str, obj: object) -> None:
    as_json = "creqA" + b64(json.dumps(obj).encode())
    for candidate in (text, "creqA" + text, "creqB1" + text, as_json):
        only_token_invalid(wallet.parse_request, candidate)
    try:
        as_cbor = "creqA" + b64(cbor2.dumps(obj))
    except (TypeError, ValueError, OverflowError):
        return
    only_token_invalid(wallet.parse_request, as_cbor)


PRICES = st.fractions(min_value=0, max_value=1, max_denominator=10**9)
TOKENS = st.integers(min_value=0, max_value=10**12)


def pricer(btc_usd: Fraction, markup: float, fee: int, floor: int) -> Pricer:
    return Pricer(rate=lambda: btc_usd, markup=markup, request_fee_msat=fee, min_charge_msat=floor)


@FUZZ
@given(
    st.fractions(min_value=Fraction(1, 100), max_value=10**7),
    st.floats(min_value=0.01, max_value=100),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    PRICES,
    PRICES,
    TOKENS,
    TOKENS,
    st.integers(0, 10**6),
    st.integers(0, 10**6),
)
def test_cost_is_never_negative_and_monotone_in_tokens(
    btc: Fraction,
    markup: float,
    fee: int,
    floor: int,
    p_in: Fraction,
    p_out: Fraction,
    prompt: int,
    completion: int,
    more_in: int,
    more_out: int,
) -> None:
    p = pricer(btc, markup, fee, floor)
    price = Price(prompt=p_in, completion=p_out)
    base = p.cost_msat(price, Usage(prompt, completion))
    assert base >= 0
    assert p.cost_msat(price, Usage(prompt + more_in, completion)) >= base
    assert p.cost_msat(price, Usage(prompt, completion + more_out)) >= base
    affordable = p.completion_tokens_affordable(price, prompt, base)
    if affordable >= 0 and p_out:
        assert p.cost_msat(price, Usage(prompt, affordable)) <= base


@FUZZ
@given(
    st.fractions(min_value=Fraction(1, 100), max_value=10**7),
    st.floats(min_value=0.01, max_value=100),
    PRICES,
    PRICES,
    st.one_of(st.none(), PRICES),
    TOKENS,
    TOKENS,
    st.integers(0, 10**6),
)
def test_cost_is_exactly_the_documented_formula(
    btc: Fraction,
    markup: float,
    p_in: Fraction,
    p_out: Fraction,
    p_cached: Fraction | None,
    prompt: int,
    completion: int,
    cached: int,
) -> None:
    """ceil(usd × markup / btc_usd × 10^11), with the integer arithmetic of the hot path."""
    price = Price(prompt=p_in, completion=p_out, cached_prompt=p_cached)
    usage = Usage(prompt + cached, completion, cached)
    usd = (prompt * p_in + cached * (p_cached if p_cached is not None else p_in)) + (
        completion * p_out
    )
    expected = math.ceil(usd * exact(markup) * 10**11 / btc)
    assert pricer(btc, markup, 0, 0).cost_msat(price, usage) == expected


@FUZZ
@given(JSONISH)
def test_usage_from_anything_is_none_or_sane(obj: object) -> None:
    usage = Usage.from_openai(obj)
    if usage is not None:
        assert min(usage.prompt_tokens, usage.completion_tokens) >= 0
        assert 0 <= usage.cached_tokens <= usage.prompt_tokens
        assert 0 <= usage.reasoning_tokens <= usage.completion_tokens
