"""Botstrapp's surfaces: GET /v1/catalog, GET /v1/pricing, a flat price per request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.conftest import NodeHandle
from tests.support.httpfetch import fetch
from tests.support.servers import ThreadedServer
from tests.test_spine import EXACT, client, hello
from tests.test_upstreams import upstream_conf, wait_for

BALANCE = 1_000_000
PRICE = {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0, "max_output_tokens": 1000}
FLAT_MSAT = 10_000  # $0.01 at $100 000/BTC


@pytest.fixture
def flat_node(make_node: Callable[..., NodeHandle]) -> NodeHandle:
    return make_node(
        models=[
            {"id": "test-model", **PRICE},
            {"id": "flat", "request_usd": 0.01, "upstream_model": "test-model"},
            {"id": "flat-slow", "request_usd": 0.01, "upstream_model": "test-slow"},
            {"id": "flat-plus-tokens", **PRICE, "request_usd": 0.01,
             "upstream_model": "test-model"},
            {"id": "dear", "input_usd_per_mtok": 15.0, "output_usd_per_mtok": 75.0},
            {"id": "test-image", "image_output_usd": 0.04},
            {"id": "whisper-minute", "audio_usd_per_minute": 0.006},
        ],
    )  # fmt: skip


def get(node: NodeHandle, path: str) -> Any:
    reply = fetch(f"{node.url}{path}")
    assert reply.status == 200, reply.body
    return reply.json()


def test_a_flat_price_is_charged_exactly_per_request(flat_node: NodeHandle) -> None:
    key = flat_node.new_key(BALANCE)
    api = client(flat_node, key)
    for n in (1, 2, 3):
        answer = api.chat.completions.create(**hello("flat", max_tokens=500), extra_body=EXACT)
        assert answer.usage is not None and answer.usage.model_extra
        assert answer.usage.model_extra["cost_msat"] == FLAT_MSAT
        assert BALANCE - flat_node.balance(key) == n * FLAT_MSAT
    api.chat.completions.create(**hello("flat-plus-tokens", max_tokens=500), extra_body=EXACT)
    assert BALANCE - flat_node.balance(key) == 3 * FLAT_MSAT + FLAT_MSAT + 2000  # + tokens
    flat_node.assert_clean()


def test_a_flat_price_is_reserved_up_front(flat_node: NodeHandle) -> None:
    short = flat_node.new_key(FLAT_MSAT - 1)
    with pytest.raises(openai.APIStatusError) as caught:
        client(flat_node, short).chat.completions.create(**hello("flat"))
    assert caught.value.status_code == 402
    assert flat_node.balance(short) == FLAT_MSAT - 1
    key = flat_node.new_key(FLAT_MSAT + 5)  # one request's worth: held while it streams
    stream = client(flat_node, key).chat.completions.create(
        **hello("flat-slow"), stream=True, extra_body={"mock": {"pause_s": 1.0}}
    )
    first = next(iter(stream))
    assert first.choices[0].delta.content
    with pytest.raises(openai.APIStatusError) as caught:  # the reservation holds the flat price
        client(flat_node, key).chat.completions.create(**hello("flat"))
    assert caught.value.status_code == 402
    list(stream)
    assert flat_node.balance(key) == 5
    flat_node.assert_clean()


def test_the_flat_price_is_shown(flat_node: NodeHandle) -> None:
    models = {m["id"]: m for m in get(flat_node, "/v1/models")["data"]}
    assert float(models["flat"]["pricing"]["request"]) == 0.01
    catalog = {m["id"]: m for m in get(flat_node, "/v1/catalog")["data"]}
    assert catalog["flat"]["pricing"]["request"] == "0.01"
    estimate = get(flat_node, "/v1/estimate?model=flat&input_tokens=5000&output_tokens=900")
    assert estimate["cost_msat"] == FLAT_MSAT and estimate["pricing"]["request"] == "0.01"
    sheet = {m["id"]: m for m in get(flat_node, "/v1/pricing")["models"]}
    assert sheet["flat"]["usd"]["request"] == "0.01"
    assert sheet["flat"]["sat"]["request"] == "10"  # sat per request


def test_the_catalog(flat_node: NodeHandle) -> None:
    catalog = {m["id"]: m for m in get(flat_node, "/v1/catalog")["data"]}
    model = catalog["test-model"]
    assert model["provider"] == "mock" and model["context_length"] == 128_000
    assert model["tier"] == "budget" and catalog["dear"]["tier"] == "premium"
    assert catalog["flat"]["tier"] == "standard"  # $0.01 a message
    assert model["modalities"] == {"input": ["text"], "output": ["text"]}
    assert catalog["test-image"]["modalities"]["output"] == ["image"]
    assert catalog["whisper-minute"]["modalities"]["input"] == ["text", "audio"]
    assert model["availability"] in ("available", "unknown")


def test_catalog_availability_follows_upstream_health(
    make_node: Callable[..., NodeHandle], fresh_upstream: ThreadedServer
) -> None:
    node = make_node(
        upstreams=[upstream_conf("c", fresh_upstream, display_name="Provider C")],
        models=[{"id": "c-model", "upstream": "c", **PRICE}],
    )

    def status(query: str = "") -> dict[str, str]:
        return {m["id"]: m["availability"] for m in get(node, f"/v1/catalog{query}")["data"]}

    wait_for(lambda: status() == {"c-model": "available"})
    assert get(node, "/v1/catalog")["data"][0]["provider"] == "Provider C"
    fresh_upstream.mock.down = True
    wait_for(lambda: status("?show_all=true") == {"c-model": "unavailable"})
    assert status() == {}  # hidden unless show_all
    fresh_upstream.mock.down = False
    wait_for(lambda: status() == {"c-model": "available"})


def test_the_public_price_sheet(flat_node: NodeHandle) -> None:
    sheet = get(flat_node, "/v1/pricing")
    assert sheet["btc_usd"] == "100000" and sheet["btc_usd_source"] == {"kind": "fixed"}
    assert sheet["markup"] == "1.0" and sheet["request_fee_msat"] == 0
    models = {m["id"]: m for m in sheet["models"]}
    assert models["test-model"]["usd"]["prompt"] == "0.000001"
    assert models["test-model"]["sat"]["prompt"] == "0.001"  # sat per token
    assert models["test-image"]["usd"]["image_output"] == "0.04"
    assert models["test-model"]["typical_message"]["usd"] == "0.002"
    assert set(models) == {m["id"] for m in get(flat_node, "/v1/models")["data"]}
