"""Surfaces other gateways document, served here in ecash terms.

GET /v1           an index of the API: endpoints, how to pay, where the docs are (Botech)
GET /v1/catalog   every model with provider, price tier, availability, context, modalities
                  (Botstrapp; `?show_all=true` adds models no healthy upstream serves)
GET /v1/pricing   the public price sheet: BTC rate and its source, markup, fees, and every
                  model's price in USD and in sat (Botstrapp's public pricing)
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from node.errors import ServiceUnavailable
from node.http.web import json_response
from node.parts import PARTS, Parts
from node.pricing import metadata
from node.pricing.model import Model
from node.proxy import router
from node.routes.discovery import _version, public_url

routes = web.RouteTableDef()

INDEX = [
    ("GET", "/v1/models", "the models sold, with prices and metadata"),
    ("GET", "/v1/models/{model}", "one model, with its full metadata"),
    ("GET", "/v1/catalog", "models with provider, price tier, availability (?show_all=true)"),
    ("GET", "/v1/pricing", "the public price sheet: BTC rate, markup, fees, every model"),
    ("GET", "/v1/estimate", "what a request costs (?model=&input_tokens=&output_tokens=)"),
    ("POST", "/v1/chat/completions", "chat completions (OpenAI); also legacy functions"),
    ("POST", "/v1/models/{model}/chat/completions", "the same, the model in the URL"),
    ("POST", "/v1/completions", "text completions (OpenAI)"),
    ("POST", "/v1/text/generations", "text from a prompt; wrapped into chat when needed"),
    ("POST", "/v1/responses", "the Responses API (OpenAI)"),
    ("POST", "/v1/embeddings", "embeddings"),
    ("POST", "/v1/images/generations", "images, priced per image"),
    ("POST", "/v1/audio/transcriptions", "speech to text, priced per minute or token"),
    ("POST", "/v1/audio/translations", "speech to English text, priced as a transcription"),
    ("POST", "/v1/wallet/create", "a new sk- key funded by a Cashu token"),
    ("GET", "/v1/wallet/balance", "the key's balance"),
    ("POST", "/v1/wallet/topup", "add a Cashu token to the key's balance"),
    ("POST", "/v1/wallet/withdraw", "pay the balance out as a Cashu token"),
    ("GET", "/v1/me", "the key: its kind, balance, limits, spend"),
    ("GET", "/v1/balance", "the key's balance"),
    ("GET", "/v1/usage", "requests and spend over a period (?from=&to=&group_by=)"),
    ("GET", "/v1/memory/{preset}", "a memory preset's turns kept for the key (DELETE forgets)"),
    ("GET", "/v1/info", "who this node is, its mints and Nostr key"),
    ("GET", "/v1/providers", "the upstreams and their health"),
]


@routes.get("/v1")
@routes.get("/v1/")
async def index(request: web.Request) -> web.Response:
    parts = request.app[PARTS]
    base = public_url(parts)
    return json_response(
        {
            "object": "api_index",
            "name": parts.settings.node.name,
            "description": parts.settings.node.description,
            "version": _version(),
            "base_url": f"{base}/v1",
            "auth": {
                "schemes": ["bearer", "x-cashu"],
                "bearer": "Authorization: Bearer sk-… (a key from /v1/wallet/create) or "
                "Bearer cashuA…/cashuB… (a token: its balance becomes a key's)",
                "x-cashu": "X-Cashu: cashuB… pays one request; the change comes back the same way",
                "mints": parts.settings.cashu.mints,
            },
            "docs": {"openapi": f"{base}/openapi.json", "info": f"{base}/v1/info"},
            "endpoints": [
                {"method": method, "path": path, "description": about}
                for method, path, about in INDEX
            ],
        }
    )


def _catalog_entry(parts: Parts, model: Model) -> dict[str, Any]:
    inputs, outputs = metadata.modalities(model)
    described = metadata.describe(model)
    return {
        "id": model.id,
        "name": described["name"],
        "description": described["description"],
        "provider": model.upstream.display_name or model.upstream.name,
        "providers": [r.upstream.display_name or r.upstream.name for r in model.routes],
        "tier": metadata.tier(parts.pricer, model),
        "availability": router.availability(parts.monitor.status, model),
        "context_length": model.context_length,
        "max_output_tokens": model.max_output_tokens,
        "modalities": {"input": inputs, "output": outputs},
        "pricing": _usd_pricing(model),
    }


@routes.get("/v1/catalog")
async def catalog(request: web.Request) -> web.Response:
    parts = request.app[PARTS]
    show_all = request.query.get("show_all", "").lower() in ("1", "true", "yes")
    entries = [_catalog_entry(parts, m) for m in parts.catalogue.all()]
    if not show_all:
        entries = [e for e in entries if e["availability"] != "unavailable"]
    return json_response({"object": "catalog", "show_all": show_all, "data": entries})


def _usd_pricing(model: Model) -> dict[str, str]:
    pricing = model.price.to_json() if model.token_priced else {"request": "0"}
    pricing["request"] = _decimal(model.price.request)
    if model.image_usd is not None:
        pricing["image_output"] = _decimal(model.image_usd)
    if model.audio_minute_usd is not None:
        pricing["audio_minute"] = _decimal(model.audio_minute_usd)
    return pricing


def _rate(parts: Parts) -> tuple[Fraction | None, dict[str, Any]]:
    rate = parts.rate
    source: dict[str, Any] = (
        {"kind": "fixed"}
        if rate.fixed is not None
        else {
            "kind": "exchanges",
            "exchanges": [urlsplit(url).hostname for url, _ in rate.sources],
            "median_of": rate.answers,
            "age_s": rate.age_s(),
        }
    )
    try:
        return rate.current(), source
    except ServiceUnavailable:
        return None, source


@routes.get("/v1/pricing")
async def pricing(request: web.Request) -> web.Response:
    parts = request.app[PARTS]
    settings = parts.settings.pricing
    btc_usd, source = _rate(parts)
    models = []
    for model in parts.catalogue.all():
        usd = metadata.typical_usd(parts.pricer, model)
        entry: dict[str, Any] = {
            "id": model.id,
            "tier": metadata.tier(parts.pricer, model),
            "usd": _usd_pricing(model),
            "sat": parts.pricer.sats_pricing(model.price) if model.token_priced else None,
            "typical_message": {"input_tokens": 1000, "output_tokens": 500, "usd": _decimal(usd)},
        }
        models.append(entry)
    return json_response(
        {
            "object": "price_sheet",
            "unit": "msat (1 sat = 1000 msat)",
            "btc_usd": _decimal(btc_usd) if btc_usd is not None else None,
            "btc_usd_source": source,
            "markup": str(settings.markup),
            "request_fee_msat": settings.request_fee_msat,
            "min_charge_msat": settings.min_charge_msat,
            "payment": {"mints": parts.settings.cashu.mints, "methods": ["bearer", "x-cashu"]},
            "models": models,
        }
    )


def _decimal(value: Fraction) -> str:
    text = f"{Decimal(value.numerator) / Decimal(value.denominator):.12f}".rstrip("0")
    return text.rstrip(".") if text.endswith(".") else text
