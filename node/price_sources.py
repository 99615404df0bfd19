"""Where a model's USD price per token comes from, first source that has one wins:

    1. CONFIG        [[models]] prices the operator wrote (both of input/output USD per Mtok;
                     defaults, and 0 for both, are not prices)
    2. UPSTREAM      the upstream's own catalogue, OpenRouter-style `GET /models`
    3. GENAI_PRICES  pydantic's genai-prices, bundled data only (never fetched at runtime)
    4. nothing       the model is not offered; a log line says why (never served for free)

Prices are exact `Fraction`s of USD per token, built from decimal strings (never floats), so
with the contract's formula `usd × markup / btc_usd × 10^11` msat, 1000 prompt + 500 completion
tokens at $1/$2 per Mtok and $100 000/BTC is exactly 2000 msat.

Reasoning tokens are part of `completion_tokens` and cached tokens part of `prompt_tokens`; a
price of 0 (or none) for them means "not priced apart", so they cost the completion / prompt
price, never nothing.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Any

import aiohttp
from genai_prices import data_snapshot
from genai_prices import types as genai

from node.settings import ModelSection

log = logging.getLogger(__name__)

MTOK = 10**6
MAX_CATALOGUE_BYTES = 32 * 1024 * 1024


class PriceSource(StrEnum):
    CONFIG = "config"
    UPSTREAM = "upstream"
    GENAI_PRICES = "genai-prices"


@dataclass(frozen=True)
class PriceTier:
    """Prices once a request's prompt exceeds `above_prompt_tokens` (for all its tokens)."""

    above_prompt_tokens: int
    prompt: Fraction
    completion: Fraction
    cached_prompt: Fraction
    reasoning: Fraction


@dataclass(frozen=True)
class ModelPrice:
    """USD per token (per request, per image) for one model, and the source it came from."""

    model_id: str
    source: PriceSource
    prompt: Fraction
    completion: Fraction
    cached_prompt: Fraction  # prompt tokens served from the upstream's cache
    reasoning: Fraction  # reasoning tokens (part of completion_tokens)
    request: Fraction = Fraction(0)  # per request, upstream's own (the node's fee is apart)
    image: Fraction | None = None  # per input image, when the upstream lists one
    context_length: int | None = None
    max_output_tokens: int | None = None
    tiers: tuple[PriceTier, ...] = ()  # long-context prices (genai-prices), ascending

    def for_prompt(self, prompt_tokens: int) -> ModelPrice:
        """The flat prices a request with this many prompt tokens pays (tiers resolved)."""
        for tier in reversed(self.tiers):
            if prompt_tokens > tier.above_prompt_tokens:
                return replace(
                    self,
                    prompt=tier.prompt,
                    completion=tier.completion,
                    cached_prompt=tier.cached_prompt,
                    reasoning=tier.reasoning,
                    tiers=(),
                )
        return replace(self, tiers=())


def exact(value: object) -> Fraction | None:
    """A decimal number as written ("0.15", 0.15, Decimal) as a Fraction; None if not one."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        return None
    try:
        return Fraction(Decimal(str(value).strip()))
    except (ArithmeticError, ValueError):  # "abc", NaN, Infinity
        return None


def _or_default(value: Fraction | None, default: Fraction) -> Fraction:
    # 0 or absent means "not priced apart": charge the base price, never nothing.
    return value if value is not None and value > 0 else default


# --- 1. config -----------------------------------------------------------------------------


def _explicit(section: ModelSection, name: str) -> Any:
    """A field's value only if the operator wrote it (defaults are not prices)."""
    value = getattr(section, name, None)
    return value if value is not None and name in section.model_fields_set else None


def _per_token(section: ModelSection, name: str) -> Fraction | None:
    value = exact(_explicit(section, f"{name}_usd_per_mtok"))
    return value / MTOK if value is not None else None


def config_price(section: ModelSection) -> ModelPrice | None:
    """The [[models]] price override, or None when the entry sets no price."""
    prompt, completion = _per_token(section, "input"), _per_token(section, "output")
    if prompt is None or completion is None:
        if prompt is not None or completion is not None:
            log.warning(
                "[[models]] %s: set both input_usd_per_mtok and output_usd_per_mtok; "
                "the partial price is ignored",
                section.id,
            )
        return None
    if prompt == completion == 0:
        # What a saved-and-reloaded entry with the 0.0 defaults looks like: not a price.
        log.warning("[[models]] %s: both prices are 0, not taken as a price", section.id)
        return None
    return ModelPrice(
        model_id=section.id,
        source=PriceSource.CONFIG,
        prompt=prompt,
        completion=completion,
        cached_prompt=_or_default(_per_token(section, "cached_input"), prompt),
        reasoning=_or_default(_per_token(section, "reasoning"), completion),
        request=exact(_explicit(section, "request_usd")) or Fraction(0),
        image=exact(_explicit(section, "image_usd")),
        context_length=_explicit(section, "context_length"),
        max_output_tokens=_explicit(section, "max_output_tokens"),
    )


# --- 2. the upstream's catalogue -----------------------------------------------------------


@dataclass(frozen=True)
class CatalogueEntry:
    """One model of an upstream's `/models`: its price if usable, else why not."""

    id: str
    price: ModelPrice | None
    why_unpriced: str = ""
    context_length: int | None = None
    max_output_tokens: int | None = None


class CatalogueError(Exception):
    """The upstream's catalogue could not be fetched or read (the message says which)."""


def _positive_int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _top_provider(item: Mapping[str, Any]) -> Mapping[str, Any]:
    top = item.get("top_provider")
    return top if isinstance(top, dict) else {}


def _catalogue_price(model_id: str, item: Mapping[str, Any]) -> tuple[ModelPrice | None, str]:
    pricing = item.get("pricing")
    if not isinstance(pricing, dict):
        return None, "the upstream's catalogue lists no pricing for it"
    prompt, completion = exact(pricing.get("prompt")), exact(pricing.get("completion"))
    if prompt is None or completion is None:
        return None, "the upstream's catalogue has no prompt/completion price for it"
    if prompt < 0 or completion < 0:  # OpenRouter's "-1": priced per route, unknown here
        return None, "the upstream's catalogue gives it a variable price"
    request, image = exact(pricing.get("request")), exact(pricing.get("image"))
    top = _top_provider(item)
    price = ModelPrice(
        model_id=model_id,
        source=PriceSource.UPSTREAM,
        prompt=prompt,
        completion=completion,
        cached_prompt=_or_default(exact(pricing.get("input_cache_read")), prompt),
        reasoning=_or_default(exact(pricing.get("internal_reasoning")), completion),
        request=request if request is not None and request > 0 else Fraction(0),
        image=image if image is not None and image > 0 else None,
        context_length=_positive_int(item.get("context_length"))
        or _positive_int(top.get("context_length")),
        max_output_tokens=_positive_int(top.get("max_completion_tokens")),
    )
    return price, ""


def parse_catalogue(payload: Any) -> dict[str, CatalogueEntry]:
    """Read `{"data": [{"id", "pricing": {...}, "context_length", "top_provider"}, ...]}`.

    Prices are OpenRouter's: USD per token as decimal strings. An OpenAI-style list without
    `pricing` gives entries with no price (and their limits, when listed).
    """
    items = payload.get("data") if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        raise CatalogueError("the catalogue has no 'data' list")
    entries: dict[str, CatalogueEntry] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            continue
        price, why = _catalogue_price(item["id"], item)
        top = _top_provider(item)
        entries[item["id"]] = CatalogueEntry(
            id=item["id"],
            price=price,
            why_unpriced=why,
            context_length=_positive_int(item.get("context_length")),
            max_output_tokens=_positive_int(top.get("max_completion_tokens")),
        )
    return entries


async def fetch_catalogue(
    session: aiohttp.ClientSession, base_url: str, *, api_key: str = "", timeout_s: float = 15.0
) -> dict[str, CatalogueEntry]:
    """GET {base_url}/models and parse it; CatalogueError (never the API key) on failure."""
    url = base_url.rstrip("/") + "/models"
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        async with asyncio.timeout(timeout_s):
            async with session.get(url, headers=headers) as resp:
                if resp.status != 200:
                    raise CatalogueError(f"GET {url}: HTTP {resp.status}")
                body = await resp.content.read(MAX_CATALOGUE_BYTES + 1)
    except TimeoutError as exc:
        raise CatalogueError(f"GET {url}: no answer within {timeout_s:.0f} s") from exc
    except aiohttp.ClientError as exc:
        raise CatalogueError(f"GET {url}: {exc.__class__.__name__}: {exc}") from exc
    if len(body) > MAX_CATALOGUE_BYTES:
        raise CatalogueError(f"GET {url}: catalogue larger than {MAX_CATALOGUE_BYTES} bytes")
    try:
        payload = json.loads(body, parse_float=Decimal)  # exact decimals, even as numbers
    except ValueError as exc:
        raise CatalogueError(f"GET {url}: not JSON") from exc
    return parse_catalogue(payload)


# --- 3. genai-prices (bundled data) --------------------------------------------------------


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


def _genai_tier(prices: genai.ModelPrice, start: int | None) -> PriceTier | None:
    prompt = _genai_level(prices.input_mtok, start)
    if prompt is None:
        return None
    # Only embedding/rerank models list no output price, and they produce no output tokens.
    completion = _genai_level(prices.output_mtok, start)
    completion = prompt if completion is None else completion
    return PriceTier(
        above_prompt_tokens=start or 0,
        prompt=prompt,
        completion=completion,
        cached_prompt=_or_default(_genai_level(prices.cache_read_mtok, start), prompt),
        reasoning=_or_default(_genai_level(prices.output_reasoning_mtok, start), completion),
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


def _monotone(tiers: list[PriceTier], base: PriceTier) -> tuple[PriceTier, ...]:
    """Each tier at least as dear as the one below: a reservation at the tier of the most
    prompt tokens then covers any fewer."""
    out: list[PriceTier] = []
    below = base
    for tier in tiers:
        below = PriceTier(
            tier.above_prompt_tokens,
            max(tier.prompt, below.prompt),
            max(tier.completion, below.completion),
            max(tier.cached_prompt, below.cached_prompt),
            max(tier.reasoning, below.reasoning),
        )
        out.append(below)
    return tuple(out)


def genai_price(
    model_ref: str,
    *,
    provider_api_url: str | None = None,
    now: datetime | None = None,
    exact: bool = False,
) -> ModelPrice | None:
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
    keys = (prices.input_mtok, prices.output_mtok, prices.cache_read_mtok)
    starts = sorted({t.start for v in keys if isinstance(v, genai.TieredPrices) for t in v.tiers})
    found = [tier for s in starts if (tier := _genai_tier(prices, s)) is not None]
    tiers = _monotone(found, base)
    requests = prices.requests_kcount
    return ModelPrice(
        model_id=model_ref,
        source=PriceSource.GENAI_PRICES,
        prompt=base.prompt,
        completion=base.completion,
        cached_prompt=base.cached_prompt,
        reasoning=base.reasoning,
        request=Fraction(requests) / 1000 if isinstance(requests, Decimal) else Fraction(0),
        context_length=model.context_window,
        tiers=tiers,
    )


# --- the order -----------------------------------------------------------------------------


def resolve_price(
    model_id: str,
    *,
    section: ModelSection | None = None,
    catalogue: Mapping[str, CatalogueEntry] | None = None,
    provider_api_url: str | None = None,
    now: datetime | None = None,
    exact: bool = False,
    quiet: bool = False,
) -> ModelPrice | None:
    """The price of `model_id`, first source first; None (and a log line why) when none has one.

    `section` is its [[models]] entry, if any; `catalogue` the upstream's parsed `/models` (None
    when not fetched); `provider_api_url` the upstream's base URL, which tells genai-prices the
    provider. Limits (context, max output) come from the first source that lists them, with
    the operator's explicit values on top. Cheap (~20 µs): genai-prices can depend on `now`.
    `exact`: see `genai_price` (for ids clients make up); `quiet`: why not offered at DEBUG.
    """
    upstream_model = (section.upstream_model if section else "") or model_id
    entry = catalogue.get(upstream_model) if catalogue is not None else None
    price = config_price(section) if section else None
    if price is None and entry is not None:
        price = entry.price
    bundled = genai_price(upstream_model, provider_api_url=provider_api_url, now=now, exact=exact)
    if price is None and bundled is not None:
        price = bundled
    if price is None:
        level = logging.DEBUG if quiet else logging.WARNING
        log.log(level, "model %s is not offered: %s", model_id, _why(section, catalogue, entry))
        return None
    return replace(
        price,
        model_id=model_id,
        context_length=_first(
            _explicit(section, "context_length") if section else None,
            price.context_length,
            entry.context_length if entry else None,
            bundled.context_length if bundled else None,
        ),
        max_output_tokens=_first(
            _explicit(section, "max_output_tokens") if section else None,
            price.max_output_tokens,
            entry.max_output_tokens if entry else None,
        ),
    )


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)


def _why(
    section: ModelSection | None,
    catalogue: Mapping[str, CatalogueEntry] | None,
    entry: CatalogueEntry | None,
) -> str:
    reasons = ["no price in [[models]]" if section else "no [[models]] entry"]
    if catalogue is None:
        reasons.append("no upstream catalogue")
    elif entry is None:
        reasons.append("not in the upstream's catalogue")
    else:
        reasons.append(entry.why_unpriced)
    reasons.append("genai-prices has no token price for it")
    return "; ".join(reasons)
