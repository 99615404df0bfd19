"""What a request costs, in integer msat, from USD prices per token and a BTC rate.

cost = ceil(usd × markup / btc_usd × 10^11 msat) + request_fee_msat, at least min_charge_msat.
(1 BTC = 10^8 sat = 10^11 msat.) Prices are exact `Fraction`s built from decimal strings, so
$0.15 per Mtok is 15/100 000 000 per token, never a binary float.

    Price          the one price type: USD per token (prompt, cached prompt, completion,
                   reasoning), per request, and long-context tiers
    SourcedPrice   a Price as a source gives it (node.pricing.sources), with its limits
    Usage          what a request used, as the upstream reports it
    Pricer         Price × Usage → msat at the current BTC rate, with markup and fees
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Any

from node.errors import ServiceUnavailable
from node.settings.money import PricingSection

MSAT_PER_BTC = 10**11
MTOK = 10**6
MAX_TARIFFS = 4096  # prices memoized at once: a whole catalogue, with room to spare


def exact(value: float | int | str | Decimal) -> Fraction:
    """A decimal number as written (0.15 → 3/20), not as the float approximates it."""
    return Fraction(Decimal(str(value)))


@dataclass(frozen=True)
class Price:
    """USD per token (and per request); long-context tiers apply to a whole request whose
    prompt exceeds their threshold (genai-prices' "cliff" tiers)."""

    prompt: Fraction
    completion: Fraction
    cached_prompt: Fraction | None = None  # input served from the upstream's cache
    reasoning: Fraction | None = None  # reasoning tokens, when priced apart from output
    request: Fraction = Fraction(0)
    tiers: tuple[tuple[int, Price], ...] = ()  # (above this many prompt tokens, price), ascending
    cache_write: Fraction | None = None  # input written to the upstream's cache (Anthropic)

    def for_prompt(self, prompt_tokens: int) -> Price:
        """The flat price a request with this many prompt tokens pays."""
        for above, price in reversed(self.tiers):
            if prompt_tokens > above:
                return price
        return self

    @classmethod
    def per_million(cls, input_usd: float | str, output_usd: float | str) -> Price:
        return cls(prompt=exact(input_usd) / MTOK, completion=exact(output_usd) / MTOK)

    def scaled(self, factor: Fraction) -> Price:
        def times(value: Fraction | None) -> Fraction | None:
            return None if value is None else value * factor

        return Price(
            self.prompt * factor,
            self.completion * factor,
            times(self.cached_prompt),
            times(self.reasoning),
            self.request * factor,
            tuple((above, tier.scaled(factor)) for above, tier in self.tiers),
            times(self.cache_write),
        )

    def to_json(self) -> dict[str, str]:
        """OpenRouter's field names: USD (or sat) per token, as decimal strings."""
        fields = {"prompt": self.prompt, "completion": self.completion, "request": self.request}
        if self.cached_prompt is not None:
            fields["input_cache_read"] = self.cached_prompt
        if self.reasoning is not None:
            fields["internal_reasoning"] = self.reasoning
        if self.cache_write is not None:
            fields["input_cache_write"] = self.cache_write
        for above, tier in self.tiers:  # what a prompt past `above` tokens pays for all its tokens
            fields[f"prompt_above_{above}"] = tier.prompt
            fields[f"completion_above_{above}"] = tier.completion
        return {name: _decimal_str(value) for name, value in fields.items()}


def dearest(prices: list[Price]) -> Price:
    """A price no cheaper than any of `prices` for any usage: each field at its highest, at
    every prompt size (the tiers of all of them). A model several upstreams serve is sold at
    this, whichever of them answers."""
    first = prices[0]
    if all(p == first for p in prices):
        return first
    thresholds = sorted({above for p in prices for above, _ in p.tiers})
    tiers = tuple((t, _highest([p.for_prompt(t + 1) for p in prices])) for t in thresholds)
    return replace(_highest([p.for_prompt(0) for p in prices]), tiers=tiers)


def _highest(flat: list[Price]) -> Price:
    prompt = max(p.prompt for p in flat)
    completion = max(p.completion for p in flat)
    cached = [p.cached_prompt if p.cached_prompt is not None else p.prompt for p in flat]
    reasoning = [p.reasoning if p.reasoning is not None else p.completion for p in flat]
    return Price(
        prompt,
        completion,
        None if all(p.cached_prompt is None for p in flat) else max(cached),
        None if all(p.reasoning is None for p in flat) else max(reasoning),
        max(p.request for p in flat),
    )


class PriceSource(StrEnum):
    CONFIG = "config"
    UPSTREAM = "upstream"
    GENAI_PRICES = "genai-prices"


@dataclass(frozen=True, kw_only=True)
class SourcedPrice(Price):
    """A model's price as a source gives it, and what else that source says of the model."""

    model_id: str
    source: PriceSource
    image: Fraction | None = None  # per input image, when the upstream lists one
    context_length: int | None = None
    max_output_tokens: int | None = None


def or_default(value: Fraction | None, default: Fraction) -> Fraction:
    # 0 or absent means "not priced apart": charge the base price, never nothing.
    return value if value is not None and value > 0 else default


def _decimal_str(value: Fraction) -> str:
    text = f"{Decimal(value.numerator) / Decimal(value.denominator):.12f}".rstrip("0")
    return text.rstrip(".") if text.endswith(".") else text


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # part of prompt_tokens
    reasoning_tokens: int = 0  # part of completion_tokens
    cache_write_tokens: int = 0  # part of prompt_tokens: written to the cache (Anthropic)

    @classmethod
    def from_openai(cls, usage: Any, output: bool = True) -> Usage | None:
        """Read OpenAI's (chat, completions, responses; embeddings with output=False) usage
        object, or None unless each count needed is there and a count: the caller then
        estimates, where a missing or odd output count read as 0 would make the answer free."""
        if not isinstance(usage, dict):
            return None
        prompt = _count(usage, "prompt_tokens", "input_tokens")
        completion = _count(usage, "completion_tokens", "output_tokens") if output else 0
        if prompt is None or completion is None:
            return None
        prompt_details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
        output_details = usage.get("completion_tokens_details") or usage.get(
            "output_tokens_details"
        )
        cached = _count(prompt_details, "cached_tokens") or 0
        reasoning = _count(output_details, "reasoning_tokens") or 0
        if output:  # some upstreams (Gemini's OpenAI-compatible API) leave the thinking out of
            # completion_tokens, though they bill it: it is in reasoning_tokens and the total
            total = _count(usage, "total_tokens") or 0
            completion = max(completion, reasoning, total - prompt)
        return cls(prompt, completion, min(cached, prompt), min(reasoning, completion))

    @classmethod
    def from_anthropic(cls, usage: Any) -> Usage | None:
        """Anthropic's usage: `input_tokens` (read fresh), `cache_creation_input_tokens`,
        `cache_read_input_tokens` (the prompt is their sum), `output_tokens`; None unless
        input and output are counts (absent or null cache counts are 0)."""
        if not isinstance(usage, dict):
            return None
        fresh, output = _count(usage, "input_tokens"), _count(usage, "output_tokens")
        if fresh is None or output is None:
            return None
        written = _count(usage, "cache_creation_input_tokens") or 0
        read = _count(usage, "cache_read_input_tokens") or 0
        return cls(fresh + written + read, output, read, 0, written)


def _count(obj: Any, *names: str) -> int | None:
    """The first of `names` holding a count: a number >= 0, rounded up (some upstreams send
    500.0), else None."""
    if not isinstance(obj, dict):
        return None
    for name in names:
        value = obj.get(name)
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and value >= 0:
            return value
        if isinstance(value, float) and 0 <= value < math.inf:
            return math.ceil(value)
    return None


class Pricer:
    def __init__(
        self,
        rate: Callable[[], Fraction],
        markup: float = 1.0,
        request_fee_msat: int = 0,
        min_charge_msat: int = 0,
    ):
        self.rate = rate  # USD per BTC; raises btc_rate.NoRate when unknown
        self.markup = exact(markup)
        self.request_fee_msat = request_fee_msat
        self.min_charge_msat = min_charge_msat
        self._memo: tuple[Fraction | None, Fraction] = (None, Fraction(0))
        self._tariffs: dict[int, tuple[Price, _Tariff]] = {}  # by id(price), for this rate

    @classmethod
    def from_settings(cls, rate: Callable[[], Fraction], pricing: PricingSection) -> Pricer:
        """The node's pricer: `rate` (USD per BTC) with [pricing] markup and fees."""
        return cls(rate, pricing.markup, pricing.request_fee_msat, pricing.min_charge_msat)

    def cost_msat(self, price: Price, usage: Usage) -> int:
        tariff = self._tariff(price.for_prompt(usage.prompt_tokens))
        msat = -(-tariff.numerator(usage) // tariff.denominator)  # ceil, in integers
        return max(msat + self.request_fee_msat, self.min_charge_msat)

    def sats_pricing(self, price: Price) -> dict[str, str] | None:
        """The price in sat per token with the markup (None while there is no BTC rate)."""
        try:
            return price.scaled(self.msat_per_usd() / 1000).to_json()
        except ServiceUnavailable:
            return None

    def msat_per_usd(self) -> Fraction:
        rate, known = self.rate(), self._memo[0]
        # the rate moves every few minutes; requests come far oftener (and most often it is
        # the very same object: no Fraction comparison, in Python, needed)
        if rate is not known and rate != known:
            self._memo = (rate, self.markup * MSAT_PER_BTC / rate)
            self._tariffs = {}
        return self._memo[1]

    def completion_tokens_affordable(
        self, price: Price, prompt_tokens: int, msat: int, cache_write_tokens: int = 0
    ) -> int:
        """The most completion tokens `msat` pays for after the prompt (may be negative)."""
        # ceil(x) + fee <= msat  <=>  x <= msat - fee, for the unrounded msat x.
        if msat < self.min_charge_msat:
            return -1
        tariff = self._tariff(price.for_prompt(prompt_tokens))
        left = (msat - self.request_fee_msat) * tariff.denominator
        left -= tariff.prompt_numerator(prompt_tokens, cache_write_tokens)
        if tariff.completion == 0:
            return 1 << 31 if left >= 0 else -1
        return left // tariff.completion

    def _tariff(self, price: Price) -> _Tariff:
        """`price` in msat per token at today's rate, as integers over one denominator."""
        per_usd = self.msat_per_usd()
        known = self._tariffs.get(id(price))
        if known is not None and known[0] is price:
            return known[1]
        tariff = _Tariff.of(price, per_usd)
        if len(self._tariffs) >= MAX_TARIFFS:  # one-off prices (images, audio) would pile up
            self._tariffs = {}
        self._tariffs[id(price)] = (price, tariff)
        return tariff


@dataclass(frozen=True)
class _Tariff:
    """msat per token = field / denominator. Integer arithmetic is exact and ~50× faster than
    Fraction arithmetic on the request path."""

    prompt: int
    cached_prompt: int
    completion: int
    reasoning: int
    request: int
    denominator: int
    cache_write: int

    @classmethod
    def of(cls, price: Price, msat_per_usd: Fraction) -> _Tariff:
        cached = price.cached_prompt if price.cached_prompt is not None else price.prompt
        reasoning = price.reasoning if price.reasoning is not None else price.completion
        written = price.cache_write if price.cache_write is not None else price.prompt
        rates = [r * msat_per_usd for r in (price.prompt, cached, price.completion, reasoning)]
        rates += [price.request * msat_per_usd, written * msat_per_usd]
        den = math.lcm(*(r.denominator for r in rates))
        p, c, o, r, q, w = (x.numerator * (den // x.denominator) for x in rates)
        return cls(p, c, o, r, q, den, w)

    def numerator(self, usage: Usage) -> int:
        uncached = usage.prompt_tokens - usage.cached_tokens  # read from the cache: cheaper
        return (
            self.prompt_numerator(uncached, usage.cache_write_tokens)
            + usage.cached_tokens * self.cached_prompt
            + (usage.completion_tokens - usage.reasoning_tokens) * self.completion
            + usage.reasoning_tokens * self.reasoning
        )

    def prompt_numerator(self, prompt_tokens: int, cache_write_tokens: int = 0) -> int:
        """`numerator` of a prompt alone (nothing read from the cache, no output), without the
        Usage (a frozen dataclass: ~1 µs to make) that planning each request would build."""
        return (
            (prompt_tokens - cache_write_tokens) * self.prompt
            + cache_write_tokens * self.cache_write
            + self.request
        )
