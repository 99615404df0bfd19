"""Price sources in order: [[models]] config, the upstream's catalogue, genai-prices, nothing."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from node.dev.procs import free_port
from node.pricing.bundled import genai_price
from node.pricing.prices import PriceSource, SourcedPrice
from node.pricing.sources import (
    CatalogueError,
    config_price,
    fetch_catalogue,
    parse_catalogue,
    resolve_price,
)
from node.settings.catalogue import ModelSection

M = 10**6  # tokens per Mtok

OPENROUTER_STYLE = {
    "data": [
        {
            "id": "gpt-4o-mini",
            "context_length": 128000,
            "pricing": {
                "prompt": "0.0000002",
                "completion": "0.0000008",
                "request": "0",
                "image": "0.000217",
                "input_cache_read": "0.0000001",
                "internal_reasoning": "0",
            },
            "top_provider": {"context_length": 128000, "max_completion_tokens": 16384},
        },
        {
            "id": "deepseek/deepseek-r1",
            "context_length": 64000,
            "pricing": {
                "prompt": 5.5e-07,
                "completion": "0.00000219",
                "internal_reasoning": "0.000003",
            },
        },
        {"id": "openrouter/auto", "pricing": {"prompt": "-1", "completion": "-1"}},
        {"id": "mystery-model", "context_length": 8192},
        {"no": "id"},
        "garbage",
    ]
}


def cost_msat(price: SourcedPrice, prompt: int, completion: int, btc_usd: int = 100_000) -> int:
    """The contract's formula, as the lead's pricing module applies it (markup 1, no fee)."""
    usd = prompt * price.prompt + completion * price.completion
    return math.ceil(usd * 1 / btc_usd * 10**11)


def test_contract_example_comes_out_exactly() -> None:
    price = config_price(ModelSection(id="m", input_usd_per_mtok=1.0, output_usd_per_mtok=2.0))
    assert price is not None
    assert (price.prompt, price.completion) == (Fraction(1, M), Fraction(2, M))
    assert cost_msat(price, 1000, 500) == 2000


def test_config_decimals_are_exact_not_floats() -> None:
    price = config_price(ModelSection(id="m", input_usd_per_mtok=0.15, output_usd_per_mtok=0.6))
    assert price is not None
    assert price.prompt == Fraction(15, 100 * M)
    assert price.completion == Fraction(6, 10 * M)
    assert price.cached_prompt == price.prompt and price.reasoning == price.completion


def test_config_wins_over_catalogue_and_genai_prices() -> None:
    section = ModelSection(id="gpt-4o-mini", input_usd_per_mtok=0.5, output_usd_per_mtok=1.5)
    price = resolve_price(
        "gpt-4o-mini", section=section, catalogue=parse_catalogue(OPENROUTER_STYLE)
    )
    assert price is not None
    assert price.source is PriceSource.CONFIG
    assert (price.prompt, price.completion) == (Fraction(1, 2 * M), Fraction(3, 2 * M))


def test_catalogue_wins_over_genai_prices() -> None:
    catalogue = parse_catalogue(OPENROUTER_STYLE)
    price = resolve_price(
        "gpt-4o-mini", section=ModelSection(id="gpt-4o-mini"), catalogue=catalogue
    )
    assert price is not None
    assert price.source is PriceSource.UPSTREAM
    assert price.prompt == Fraction(2, 10 * M) and price.completion == Fraction(8, 10 * M)
    assert price.cached_prompt == Fraction(1, 10 * M)
    assert price.reasoning == price.completion  # "0" = not priced apart, never free
    assert price.image == Fraction(217, M)
    assert (price.context_length, price.max_output_tokens) == (128000, 16384)


def test_genai_prices_win_when_the_upstream_has_no_price() -> None:
    for catalogue in (None, {}, parse_catalogue({"data": [{"id": "gpt-4o-mini"}]})):
        price = resolve_price("gpt-4o-mini", catalogue=catalogue)
        assert price is not None
        assert price.source is PriceSource.GENAI_PRICES
        assert price.prompt == Fraction(15, 100 * M)  # $0.15 per Mtok
        assert price.completion == Fraction(60, 100 * M)  # $0.60 per Mtok
        assert price.cached_prompt == Fraction(75, 1000 * M)  # $0.075 per Mtok
        assert price.context_length == 128000


def test_no_price_anywhere_means_not_offered_and_says_why(caplog: Any) -> None:
    catalogue = parse_catalogue(OPENROUTER_STYLE)
    with caplog.at_level(logging.WARNING, logger="node.pricing.sources"):
        assert resolve_price("mystery-model", catalogue=catalogue) is None
        assert resolve_price("openrouter/auto", catalogue=catalogue) is None
    messages = [r.getMessage() for r in caplog.records]
    assert "model mystery-model is not offered" in messages[0]
    assert "lists no pricing" in messages[0] and "genai-prices" in messages[0]
    assert "variable price" in messages[1]


def test_defaults_and_partial_config_are_not_prices(caplog: Any) -> None:
    assert config_price(ModelSection(id="gpt-4o-mini")) is None
    dumped = ModelSection(id="gpt-4o-mini").model_dump()  # saved and reloaded: 0.0 looks set
    assert config_price(ModelSection(**dumped)) is None
    assert resolve_price("gpt-4o-mini", section=ModelSection(**dumped)) is not None  # genai
    with caplog.at_level(logging.WARNING, logger="node.pricing.sources"):
        assert config_price(ModelSection(id="x", input_usd_per_mtok=1.0)) is None
    assert "set both" in caplog.text
    free_input = config_price(ModelSection(id="x", input_usd_per_mtok=0, output_usd_per_mtok=2))
    assert free_input is not None and free_input.prompt == 0


def test_upstream_model_is_what_gets_priced_and_limits_merge() -> None:
    section = ModelSection(id="cheap", upstream_model="gpt-4o-mini", max_output_tokens=1000)
    price = resolve_price("cheap", section=section, catalogue=parse_catalogue(OPENROUTER_STYLE))
    assert price is not None
    assert (price.model_id, price.source) == ("cheap", PriceSource.UPSTREAM)
    assert (price.context_length, price.max_output_tokens) == (128000, 1000)


class FutureModelSection(ModelSection):
    """The [[models]] fields proposed for the settings, to show they are read once added."""

    cached_input_usd_per_mtok: float | None = None
    reasoning_usd_per_mtok: float | None = None
    request_usd: float | None = None


def test_proposed_config_fields_are_read() -> None:
    section = FutureModelSection(
        id="r1",
        input_usd_per_mtok=0.55,
        output_usd_per_mtok=2.19,
        cached_input_usd_per_mtok=0.14,
        reasoning_usd_per_mtok=3,
        request_usd=0.005,
    )
    price = config_price(section)
    assert price is not None
    assert price.cached_prompt == Fraction(14, 100 * M)
    assert price.reasoning == Fraction(3, M)
    assert price.request == Fraction(5, 1000)


def test_catalogue_prices_are_exact_even_as_json_numbers() -> None:
    import json
    from decimal import Decimal

    payload = json.loads(json.dumps(OPENROUTER_STYLE), parse_float=Decimal)
    entry = parse_catalogue(payload)["deepseek/deepseek-r1"]
    assert entry.price is not None
    assert entry.price.prompt == Fraction(55, 100 * M)
    assert entry.price.reasoning == Fraction(3, M)
    assert entry.context_length == 64000 and entry.max_output_tokens is None
    with pytest.raises(CatalogueError):
        parse_catalogue({"object": "error"})


@pytest.mark.parametrize(
    ("ref", "prompt", "completion", "cached"),
    [
        ("gpt-4o", "2.5", "10", "1.25"),
        ("o3-mini", "1.1", "4.4", "0.55"),
        ("claude-3-5-sonnet-latest", "3", "15", "0.3"),
        ("claude-sonnet-4-20250514", "3", "15", "0.3"),
    ],
)
def test_exact_genai_prices_of_well_known_models(
    ref: str, prompt: str, completion: str, cached: str
) -> None:
    price = genai_price(ref)
    assert price is not None and price.source is PriceSource.GENAI_PRICES
    assert price.prompt == Fraction(prompt) / M
    assert price.completion == Fraction(completion) / M
    assert price.cached_prompt == Fraction(cached) / M


def test_genai_long_context_tiers_apply_above_the_threshold() -> None:
    price = genai_price("gemini-2.5-pro")
    assert price is not None
    short, long = price.for_prompt(200_000), price.for_prompt(200_001)
    assert (short.prompt, short.completion) == (Fraction(125, 100 * M), Fraction(10, M))
    assert (long.prompt, long.completion) == (Fraction(25, 10 * M), Fraction(15, M))
    assert long.cached_prompt == Fraction(25, 100 * M) and long.tiers == ()


def test_genai_prices_follow_the_time_of_day() -> None:
    peak = genai_price("deepseek-chat", now=datetime(2025, 6, 1, 12, tzinfo=UTC))
    off_peak = genai_price("deepseek-chat", now=datetime(2025, 6, 1, 20, tzinfo=UTC))
    assert peak is not None and off_peak is not None
    assert off_peak.prompt < peak.prompt == Fraction(27, 100 * M)


def test_genai_provider_from_upstream_url_or_vendor_prefix() -> None:
    via_openrouter = genai_price(
        "openai/gpt-4o-mini", provider_api_url="https://openrouter.ai/api/v1"
    )
    assert via_openrouter is not None and via_openrouter.prompt == Fraction(15, 100 * M)
    vendor = genai_price("anthropic/claude-3-5-sonnet")
    assert vendor is not None and vendor.completion == Fraction(15, M)
    direct = genai_price("gpt-4o-mini", provider_api_url="https://api.openai.com/v1")
    assert direct is not None and direct.completion == Fraction(6, 10 * M)
    assert genai_price("surely-not-a-model-xyz") is None


# --- fetching a catalogue over HTTP ----------------------------------------------------------


@pytest.fixture
async def upstream() -> AsyncIterator[dict[str, Any]]:
    state: dict[str, Any] = {"mode": "ok", "auth": None}

    async def models(request: web.Request) -> web.StreamResponse:
        state["auth"] = request.headers.get("Authorization")
        if state["mode"] == "slow":
            await asyncio.sleep(5)
        if state["mode"] == "error":
            return web.json_response({"error": {"message": "no"}}, status=500)
        if state["mode"] == "garbage":
            return web.Response(text="<html>", content_type="text/html")
        return web.json_response(OPENROUTER_STYLE)

    app = web.Application()
    app.router.add_get("/api/v1/models", models)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    state["url"] = f"http://127.0.0.1:{port}/api/v1"
    yield state
    await runner.cleanup()


async def test_fetch_catalogue_reads_prices_and_sends_the_key(upstream: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as session:
        entries = await fetch_catalogue(session, upstream["url"] + "/", api_key="sk-up")
    assert upstream["auth"] == "Bearer sk-up"
    assert set(entries) == {
        "gpt-4o-mini",
        "deepseek/deepseek-r1",
        "openrouter/auto",
        "mystery-model",
    }
    price = entries["gpt-4o-mini"].price
    assert price is not None and price.prompt == Fraction(2, 10 * M)


@pytest.mark.parametrize("mode", ["error", "garbage", "slow", "down"])
async def test_fetch_catalogue_failures_are_catalogue_errors(
    upstream: dict[str, Any], mode: str
) -> None:
    upstream["mode"] = mode
    url = f"http://127.0.0.1:{free_port()}/v1" if mode == "down" else upstream["url"]
    async with aiohttp.ClientSession() as session:
        with pytest.raises(CatalogueError) as caught:
            await fetch_catalogue(session, url, api_key="sk-secret", timeout_s=0.5)
    assert "sk-secret" not in str(caught.value)
