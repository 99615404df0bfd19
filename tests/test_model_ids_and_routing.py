"""Model ids clients make up: bounded in length and refused before any lookup, memo or log line
(a multi-MB id stalled the node, unpaid); a prefix-routed id is offered only at a price for that
very model (genai-prices prices gpt-4o-mini-search-preview as gpt-4o-mini, but the upstream
bills a web search per request on top); models that search on every request only at a
per-request price."""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from node.pricing.billing import MAX_MODEL_ID_CHARS
from node.pricing.catalogue import Catalogue
from node.pricing.sources import CatalogueEntry
from node.settings import load_settings
from tests.conftest import NodeHandle
from tests.support.billing import pay
from tests.support.servers import ThreadedServer

LONG = "gpt-" + "a" * MAX_MODEL_ID_CHARS
HI = [{"role": "user", "content": "hi"}]


async def call(
    node: NodeHandle, method: str, path: str, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
        session.request(method, f"{node.url}{path}", **kwargs) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


def entries(model: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every way a model id enters the node: (method, path, request options)."""
    form = aiohttp.FormData({"model": model})
    form.add_field("file", b"RIFF", filename="a.wav", content_type="audio/wav")
    quoted = urllib.parse.quote(model, safe="")
    return [
        ("POST", "/v1/chat/completions", {"json": {"model": model, "messages": HI}}),
        ("POST", "/v1/completions", {"json": {"model": model, "prompt": "hi"}}),
        ("POST", "/v1/responses", {"json": {"model": model, "input": "hi"}}),
        ("POST", "/v1/embeddings", {"json": {"model": model, "input": "hi"}}),
        ("POST", "/v1/images/generations", {"json": {"model": model, "prompt": "a cat"}}),
        ("POST", "/v1/audio/transcriptions", {"data": form}),
        ("POST", f"/v1/models/{quoted}/chat/completions", {"json": {"messages": HI}}),
        ("GET", f"/v1/models/{quoted}", {}),
        ("GET", "/v1/estimate", {"params": {"model": model}}),
    ]


@pytest.mark.parametrize(
    "model", [LONG, "preset/" + "p" * MAX_MODEL_ID_CHARS, "gpt-4o\nINFO forged log line"]
)
async def test_a_long_or_unprintable_model_id_is_refused_everywhere_it_enters(
    billing_node: Callable[..., NodeHandle], model: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    node = billing_node()
    for method, path, options in entries(model):
        status, body = await call(node, method, path, **options)
        if status == 404 and "\n" in model and "/models/" in path:
            continue  # no route takes a path with a line break: refused before any lookup too
        assert status == 400, (path, body)
        assert body["error"]["code"] == "invalid_model" and body["error"]["param"] == "model"
        assert model not in body["error"]["message"]
    for record in caplog.records:  # only the access log names a path, as sent and bounded
        text = record.getMessage()
        assert record.name == "nutgate.access" or model[:64] not in text
        assert "\n" not in text and len(text) < 1024


async def test_an_id_at_the_limit_is_looked_up_as_usual(
    billing_node: Callable[..., NodeHandle],
) -> None:
    node = billing_node()
    status, body = await call(node, "GET", f"/v1/models/{LONG[:MAX_MODEL_ID_CHARS]}")
    assert status == 404 and body["error"]["code"] == "model_not_found"


async def test_multi_megabyte_model_ids_neither_stall_the_node_nor_fill_its_log(
    billing_node: Callable[..., NodeHandle], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    node = billing_node()  # its upstream takes gpt-* and gemini-* by prefix
    huge = ["gpt-" + str(i) * (3 * 2**20) for i in range(6)]
    bodies = [{"model": m, "messages": HI} for m in huge]
    sent = [asyncio.create_task(call(node, "POST", "/v1/chat/completions", json=b)) for b in bodies]
    slowest = 0.0
    while not all(task.done() for task in sent):  # /health, polled while they are handled
        started = time.monotonic()
        assert (await call(node, "GET", "/health"))[0] == 200
        slowest = max(slowest, time.monotonic() - started)
        await asyncio.sleep(0.05)
    assert slowest < 1.0, f"/health waited {slowest:.1f} s behind unpaid requests"
    assert [(await task)[0] for task in sent] == [400] * len(sent)
    assert max(len(r.getMessage()) for r in caplog.records) < 10_000


# --- prefix routing and per-call models ----------------------------------------------------


async def model_status(node: NodeHandle, model: str) -> int:
    return (await call(node, "GET", f"/v1/models/{model}"))[0]


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4o-mini-search-preview",  # genai-prices: gpt-4o-mini's price
        "gpt-4o-mini-search-preview-2025-03-11",
        "gpt-4o-search-preview",  # genai-prices prices it, without its per-search fee
        "gpt-4o-mini-made-up",
    ],
)
async def test_prefix_routed_ids_without_a_price_of_their_own_are_not_offered(
    billing_node: Callable[..., NodeHandle], billing_upstream: ThreadedServer, model: str
) -> None:
    node, mock = billing_node(), billing_upstream.mock
    assert await model_status(node, model) == 404
    body = {"model": model, "messages": HI}
    outcome = await pay(node, mock, "chat/completions", body, key=node.new_key(10**9))
    assert outcome.status == 404 and outcome.bills == []


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-4o-mini-2024-07-18", "gemini-2.5-pro"])
async def test_prefix_routed_ids_genai_prices_prices_are_offered(
    billing_node: Callable[..., NodeHandle], model: str
) -> None:
    assert await model_status(billing_node(), model) == 200


async def test_a_listed_search_model_needs_a_per_request_price(
    billing_node: Callable[..., NodeHandle], fresh_upstream: ThreadedServer
) -> None:
    """Listed by the upstream and priced per token (here by the upstream's default), a model
    that searches on every request is still not offered: the searches are billed apart."""
    fresh_upstream.mock.listed[:] = ["acme-search-1", "acme-chat-1"]
    upstream = {"name": "acme", "base_url": f"{fresh_upstream.url}/v1",
                "default_input_usd_per_mtok": 1.0, "default_output_usd_per_mtok": 2.0}  # fmt: skip
    node = billing_node(upstreams=[upstream], models=[])
    for _ in range(50):  # the listing arrives at start
        if await model_status(node, "acme-chat-1") == 200:
            break
        await asyncio.sleep(0.1)
    assert await model_status(node, "acme-chat-1") == 200
    assert await model_status(node, "acme-search-1") == 404


async def test_a_per_request_price_is_charged_on_top_of_tokens(
    billing_node: Callable[..., NodeHandle], billing_upstream: ThreadedServer
) -> None:
    node, mock = billing_node(), billing_upstream.mock
    _, listed = await call(node, "GET", "/v1/models/bill-search")
    assert listed["pricing"]["request"] == 0.03
    body = {"model": "bill-search", "messages": HI, "max_tokens": 10}
    outcome = await pay(node, mock, "chat/completions", body, key=node.new_key(10**9))
    tokens = outcome.bills[0].prompt_tokens + 2 * outcome.bills[0].completion_tokens
    assert outcome.charged_msat == tokens + 30_000  # $0.03 at $100 000/BTC: 30 000 msat


def test_a_listed_model_with_its_own_entry_is_priced_by_it_without_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = load_settings(
        None,
        upstreams=[{"name": "u", "base_url": "http://u.example/v1"}],
        models=[{"id": "house-model", "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0}],
    )
    listing = {"house-model": CatalogueEntry("house-model", None, "no pricing listed")}
    with caplog.at_level(logging.DEBUG, "node.pricing"):
        catalogue = Catalogue(settings, {"u": listing})
    assert catalogue.get("house-model").price.prompt > 0
    assert "not offered" not in caplog.text
