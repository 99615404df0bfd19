"""Prices from pydantic's genai-prices, its bundled data only (never fetched at runtime).

genai-prices matches ids by patterns, and matches some to another model's price
(gpt-4o-mini-search-preview has gpt-4o-mini's, without the search billed on every call): with
`exact`, only a price listed for that very model counts. Long-context tiers ("cliff" prices for
all tokens of a prompt past a threshold) come along, each at least as dear as the one below.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

from genai_prices import data_snapshot
from genai_prices import types as genai

from node.pricing.prices import MTOK, Price, PriceSource, SourcedPrice, or_default


def _find_genai_model(model_ref: str, provider_api_url: str | None) -> genai.ModelInfo | None:
    # get_snapshot() is the bundled data unless genai_prices.UpdatePrices runs, which the node
    # never starts: prices do not change under a running node, and nothing is fetched.
    snapshot = data_snapshot.get_snapshot()
    attempts: list[tuple[str, str | None, str | None]] = []
    if provider_api_url:
        attempts.append((model_ref, None, provider_api_url))
    attempts.append((model_ref, None, None))
    vendor, _, name = model_ref.partition("/")
    if name:  # "anthropic/claude-3.5-sonnet" → the vendor's own price
        attempts.append((name, vendor, None))
    for ref, provider_id, api_url in attempts:
        try:
            return snapshot.find_provider_model(ref, None, provider_id, api_url)[1]
        except LookupError:
            continue
    return None


def _genai_level(value: object, start: int | None) -> Fraction | None:
    """USD per token from a genai-prices per-Mtok value, at a tier threshold (None: base)."""
    if isinstance(value, genai.TieredPrices):
        level = value.base
        for tier in value.tiers:
            if start is not None and tier.start <= start:
                level = tier.price
        return Fraction(level) / MTOK
    return Fraction(value) / MTOK if isinstance(value, Decimal) else None


def _genai_tier(prices: genai.ModelPrice, start: int | None) -> Price | None:
    """The flat price at a tier's threshold (None: the base price), every field set."""
    prompt = _genai_level(prices.input_mtok, start)
    if prompt is None:
        return None
    # Only embedding/rerank models list no output price, and they produce no output tokens.
    completion = _genai_level(prices.output_mtok, start)
    completion = prompt if completion is None else completion
    return Price(
        prompt,
        completion,
        or_default(_genai_level(prices.cache_read_mtok, start), prompt),
        or_default(_genai_level(prices.output_reasoning_mtok, start), completion),
        cache_write=_genai_level(prices.cache_write_mtok, start) or None,
    )


# A version at the end of a model id: a date (-2024-07-18, -20250514, -0709, -05-20), -latest,
# -001, -0. gpt-4o-2024-08-06 is gpt-4o; gpt-4o-mini-search-preview is not gpt-4o-mini.
VERSION_SUFFIX = re.compile(r"(-(\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|\d{2}-\d{2}|\d{3}|latest|0))+$")


def base_id(model_id: str) -> str:
    """A model id without its vendor prefix and version suffixes, lower-cased."""
    return VERSION_SUFFIX.sub("", model_id.lower().rpartition("/")[2])


@functools.cache
def _genai_base_ids() -> frozenset[str]:
    snapshot = data_snapshot.get_snapshot()
    return frozenset(base_id(m.id) for p in snapshot.providers for m in p.models)


def _monotone(tiers: list[tuple[int, Price]], base: Price) -> tuple[tuple[int, Price], ...]:
    """Each tier at least as dear as the one below: a reservation at the tier of the most
    prompt tokens then covers any fewer."""
    out: list[tuple[int, Price]] = []
    below = base
    for above, tier in tiers:
        below = Price(
            max(tier.prompt, below.prompt),
            max(tier.completion, below.completion),
            max(_cached(tier), _cached(below)),
            max(_reasoning(tier), _reasoning(below)),
            cache_write=_max_write(tier, below),
        )
        out.append((above, below))
    return tuple(out)


def _max_write(tier: Price, below: Price) -> Fraction | None:
    writes = [p.cache_write for p in (tier, below) if p.cache_write is not None]
    return max(writes) if writes else None


def _cached(price: Price) -> Fraction:
    return price.cached_prompt if price.cached_prompt is not None else price.prompt


def _reasoning(price: Price) -> Fraction:
    return price.reasoning if price.reasoning is not None else price.completion


def genai_price(
    model_ref: str,
    *,
    provider_api_url: str | None = None,
    now: datetime | None = None,
    exact: bool = False,
) -> SourcedPrice | None:
    """The bundled genai-prices price for a model, or None when it has no token price.

    `now` matters: some prices change by date or time of day (DeepSeek's off-peak hours).
    `exact`: only a price genai-prices lists for this very model (a dated snapshot counts),
    not one it matches by pattern to another (gpt-4o-mini-search-preview → gpt-4o-mini). An id
    it does not know is not looked up at all: genai-prices memoises every lookup, unbounded.
    """
    if exact and base_id(model_ref) not in _genai_base_ids():
        return None
    model = _find_genai_model(model_ref, provider_api_url)
    if model is None or (exact and base_id(model.id) != base_id(model_ref)):
        return None
    prices = model.get_prices(now or datetime.now(UTC))
    base = _genai_tier(prices, None)
    if base is None:
        return None
    keys = (prices.input_mtok, prices.output_mtok, prices.cache_read_mtok, prices.cache_write_mtok)
    starts = sorted({t.start for v in keys if isinstance(v, genai.TieredPrices) for t in v.tiers})
    found = [(s, tier) for s in starts if (tier := _genai_tier(prices, s)) is not None]
    requests = prices.requests_kcount
    return SourcedPrice(
        base.prompt,
        base.completion,
        base.cached_prompt,
        base.reasoning,
        Fraction(requests) / 1000 if isinstance(requests, Decimal) else Fraction(0),
        _monotone(found, base),
        base.cache_write,
        model_id=model_ref,
        source=PriceSource.GENAI_PRICES,
        context_length=model.context_window,
    )
