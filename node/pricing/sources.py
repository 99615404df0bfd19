"""Where a model's USD price per token comes from, first source that has one wins:

    1. CONFIG        [[models]] prices the operator wrote (both of input/output USD per Mtok;
                     defaults, and 0 for both, are not prices)
    2. UPSTREAM      the upstream's own catalogue, OpenRouter-style `GET /models`
    3. GENAI_PRICES  pydantic's genai-prices, bundled data only (never fetched at runtime)
    4. nothing       the model is not offered; a log line says why (never served for free)

Prices are exact `Fraction`s of USD per token, built from decimal strings (never floats), so
with the contract's formula `usd × markup / btc_usd × 10^11` msat, 1000 prompt + 500 completion
tokens at $1/$2 per Mtok and $100 000/BTC is exactly 2000 msat.

A source gives a `SourcedPrice`: the one price type (node.pricing.prices.Price) with what
else the source says of the model beside it (where it came from, its limits). Reasoning
tokens are part of `completion_tokens` and cached tokens part of `prompt_tokens`; a price of 0
(or none) for them means "not priced apart", so they cost the completion / prompt price, never
nothing. genai-prices is read in node/pricing/bundled.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import aiohttp

from node.pricing.bundled import genai_price
from node.pricing.prices import MTOK, PriceSource, SourcedPrice, or_default
from node.settings.catalogue import ModelSection

log = logging.getLogger(__name__)

MAX_CATALOGUE_BYTES = 32 * 1024 * 1024


def read_decimal(value: object) -> Fraction | None:
    """A decimal number as written ("0.15", 0.15, Decimal) as a Fraction; None if not one."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        return None
    try:
        return Fraction(Decimal(str(value).strip()))
    except (ArithmeticError, ValueError):  # "abc", NaN, Infinity
        return None


# --- 1. config -----------------------------------------------------------------------------


def _written(section: ModelSection, name: str) -> Any:
    """A field's value only if the operator wrote it (defaults are not prices)."""
    return getattr(section, name) if name in section.model_fields_set else None


def _per_token(usd_per_mtok: float | None) -> Fraction | None:
    value = read_decimal(usd_per_mtok)
    return value / MTOK if value is not None else None


def config_price(section: ModelSection) -> SourcedPrice | None:
    """The [[models]] price override, or None when the entry sets no price."""
    prompt = _per_token(_written(section, "input_usd_per_mtok"))
    completion = _per_token(_written(section, "output_usd_per_mtok"))
    request = read_decimal(section.request_usd) or Fraction(0)
    if prompt is None and completion is None and request:  # a flat price per request only
        prompt = completion = Fraction(0)
    if prompt is None or completion is None:
        if prompt is not None or completion is not None:
            log.warning(
                "[[models]] %s: set both input_usd_per_mtok and output_usd_per_mtok; "
                "the partial price is ignored",
                section.id,
            )
        return None
    if prompt == completion == 0 and not request:
        # What a saved-and-reloaded entry with the 0.0 defaults looks like: not a price.
        log.warning("[[models]] %s: both prices are 0, not taken as a price", section.id)
        return None
    return SourcedPrice(
        prompt,
        completion,
        or_default(_per_token(_cache_read(section)), prompt),
        or_default(_per_token(section.reasoning_usd_per_mtok), completion),
        request,
        cache_write=_per_token(section.cache_write_usd_per_mtok) or None,
        model_id=section.id,
        source=PriceSource.CONFIG,
        context_length=_written(section, "context_length"),
        max_output_tokens=_written(section, "max_output_tokens"),
    )


def _positive(value: Fraction | None) -> Fraction | None:
    return value if value is not None and value > 0 else None


def _cache_read(section: ModelSection) -> float | None:
    if section.cache_read_usd_per_mtok is not None:
        return section.cache_read_usd_per_mtok
    return section.cached_input_usd_per_mtok


# --- 2. the upstream's catalogue -----------------------------------------------------------


@dataclass(frozen=True)
class CatalogueEntry:
    """One model of an upstream's `/models`: its price if usable, else why not."""

    id: str
    price: SourcedPrice | None
    why_unpriced: str = ""
    context_length: int | None = None
    max_output_tokens: int | None = None
    about: tuple[tuple[str, Any], ...] = ()  # what else it lists (ABOUT_FIELDS), as given


# What an upstream's listing says of a model beyond its price (OpenRouter's field names).
ABOUT_FIELDS = ("created", "name", "description", "architecture", "supported_parameters")


class CatalogueError(Exception):
    """The upstream's catalogue could not be fetched or read (the message says which)."""


def _positive_int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _top_provider(item: Mapping[str, Any]) -> Mapping[str, Any]:
    top = item.get("top_provider")
    return top if isinstance(top, dict) else {}


def _catalogue_price(model_id: str, item: Mapping[str, Any]) -> tuple[SourcedPrice | None, str]:
    pricing = item.get("pricing")
    if not isinstance(pricing, dict):
        return None, "the upstream's catalogue lists no pricing for it"
    prompt, completion = (
        read_decimal(pricing.get("prompt")),
        read_decimal(pricing.get("completion")),
    )
    if prompt is None or completion is None:
        return None, "the upstream's catalogue has no prompt/completion price for it"
    if prompt < 0 or completion < 0:  # OpenRouter's "-1": priced per route, unknown here
        return None, "the upstream's catalogue gives it a variable price"
    request, image = read_decimal(pricing.get("request")), read_decimal(pricing.get("image"))
    top = _top_provider(item)
    price = SourcedPrice(
        prompt,
        completion,
        or_default(read_decimal(pricing.get("input_cache_read")), prompt),
        or_default(read_decimal(pricing.get("internal_reasoning")), completion),
        request if request is not None and request > 0 else Fraction(0),
        cache_write=_positive(read_decimal(pricing.get("input_cache_write"))),
        model_id=model_id,
        source=PriceSource.UPSTREAM,
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
            about=tuple((k, item[k]) for k in ABOUT_FIELDS if k in item),
        )
    return entries


async def fetch_catalogue(
    session: aiohttp.ClientSession,
    base_url: str,
    *,
    api_key: str = "",
    timeout_s: float = 15.0,
    anthropic_version: str | None = None,
) -> dict[str, CatalogueEntry]:
    """GET {base_url}/models and parse it; CatalogueError (never the API key) on failure.
    With `anthropic_version`, asked as Anthropic wants: x-api-key and anthropic-version."""
    url = base_url.rstrip("/") + "/models"
    headers = {"Accept": "application/json"}
    if anthropic_version is not None:
        headers["anthropic-version"] = anthropic_version
        if api_key:
            headers["x-api-key"] = api_key
    elif api_key:
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
) -> SourcedPrice | None:
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
    flat = read_decimal(section.request_usd) if section else None
    if flat is not None:  # the operator's per-request price, on any source and every tier
        tiers = tuple((above, replace(tier, request=flat)) for above, tier in price.tiers)
        price = replace(price, request=flat, tiers=tiers)
    return replace(
        price,
        model_id=model_id,
        context_length=_first(
            _written(section, "context_length") if section else None,
            price.context_length,
            entry.context_length if entry else None,
            bundled.context_length if bundled else None,
        ),
        max_output_tokens=_first(
            _written(section, "max_output_tokens") if section else None,
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
