"""OpenRouter-style model metadata, and a client's fallback list `"models": [...]`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.conftest import NodeHandle
from tests.support.httpfetch import fetch
from tests.support.mints import MintInfo, RefWallet
from tests.support.servers import ThreadedServer
from tests.test_spine import EXACT, client, hello
from tests.test_upstreams import upstream_conf

BALANCE = 1_000_000
PRICE = {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0, "max_output_tokens": 1000}
ABOUT = {
    "created": 1_700_000_000,
    "name": "Meta Model",
    "description": "A model the upstream describes",
    "architecture": {"input_modalities": ["text", "image"], "output_modalities": ["text"]},
    "supported_parameters": ["max_tokens", "temperature", "tools"],
}


def test_metadata_from_the_upstreams_listing(
    make_node: Callable[..., NodeHandle], fresh_upstream: ThreadedServer
) -> None:
    fresh_upstream.mock.listed = ["meta-model", "plain-model"]
    fresh_upstream.mock.about = {"meta-model": ABOUT}
    node = make_node(
        upstreams=[upstream_conf("c", fresh_upstream)],
        models=[{"id": "meta-model", "upstream": "c", **PRICE},
                {"id": "plain-model", "upstream": "c", **PRICE, "name": "Plain"}],
    )  # fmt: skip
    key = node.new_key(BALANCE)
    api = client(node, key)
    for model in (
        api.models.retrieve("meta-model"),
        {m.id: m for m in api.models.list()}["meta-model"],
    ):
        extra: dict[str, Any] = model.model_extra or {}
        assert model.created == 1_700_000_000
        assert extra["name"] == "Meta Model"
        assert extra["description"] == "A model the upstream describes"
        assert extra["architecture"]["input_modalities"] == ["text", "image"]
        assert extra["architecture"]["modality"] == "text+image->text"
        assert extra["supported_parameters"] == ["max_tokens", "temperature", "tools"]
    plain = api.models.retrieve("plain-model").model_extra or {}
    assert plain["name"] == "Plain" and "tools" in plain["supported_parameters"]
    assert plain["architecture"]["output_modalities"] == ["text"]
    catalog = {m["id"]: m for m in fetch(f"{node.url}/v1/catalog").json()["data"]}
    assert catalog["meta-model"]["modalities"]["input"] == ["text", "image"]


@pytest.fixture
def fb_node(make_node: Callable[..., NodeHandle]) -> NodeHandle:
    dear = {"input_usd_per_mtok": 2.0, "output_usd_per_mtok": 4.0, "max_output_tokens": 1000}
    return make_node(
        models=[
            {"id": "test-model", **PRICE},
            {"id": "test-fail500", **PRICE},
            {"id": "test-hang", "upstream": "impatient", **PRICE},
            {"id": "dear", **dear, "upstream_model": "test-model"},
            {"id": "fail-too", **PRICE, "upstream_model": "test-fail500"},
        ]
    )


def sent_models(upstream: ThreadedServer, since: int) -> list[str]:
    return [r["body"]["model"] for r in upstream.mock.received[since:]]


def test_fallbacks_are_tried_in_order(fb_node: NodeHandle, upstream: ThreadedServer) -> None:
    key = fb_node.new_key(BALANCE)
    since = len(upstream.mock.received)
    answer = client(fb_node, key).chat.completions.create(
        **hello("test-fail500", max_tokens=500),
        extra_body={**EXACT, "models": ["dear", "test-model"]},
    )
    assert answer.choices[0].message.content
    assert sent_models(upstream, since) == ["test-fail500", "test-model"]
    assert "models" not in upstream.mock.received[-1]["body"]
    assert BALANCE - fb_node.balance(key) == 4000  # refused with a 500: free; dear's price
    fb_node.assert_clean()


def test_a_billed_failure_then_a_fallback(fb_node: NodeHandle) -> None:
    key = fb_node.new_key(BALANCE)
    answer = client(fb_node, key).chat.completions.create(
        model="test-hang",
        messages=[{"role": "user", "content": "x" * 400}],
        max_tokens=500,
        extra_body={"models": ["test-model"], "mock": {"completion_tokens": 500}},
        stream=True,
    )
    chunks = list(answer)
    usage = chunks[-1].usage
    assert usage is not None and usage.model_extra
    spent = BALANCE - fb_node.balance(key)
    assert spent > usage.model_extra["cost_msat"]  # the timed-out attempt's floor on top
    fb_node.assert_clean()


def test_every_model_failing_is_the_last_error(fb_node: NodeHandle) -> None:
    key = fb_node.new_key(BALANCE)
    with pytest.raises(openai.APIStatusError) as caught:
        client(fb_node, key).chat.completions.create(
            **hello("test-fail500"), extra_body={"models": ["fail-too"]}
        )
    assert caught.value.status_code == 502
    assert fb_node.balance(key) == BALANCE
    fb_node.assert_clean()


@pytest.mark.parametrize("models", ["dear", [1], ["a", "b", "c", "d", "e", "f"], ["nope"]])
def test_bad_fallback_lists_are_refused(fb_node: NodeHandle, models: Any) -> None:
    key = fb_node.new_key(BALANCE)
    with pytest.raises((openai.BadRequestError, openai.NotFoundError)):
        client(fb_node, key).chat.completions.create(
            **hello("test-model"), extra_body={"models": models}
        )
    assert fb_node.balance(key) == BALANCE


async def test_x_cashu_fallback_pays_once_and_returns_the_change(
    make_node: Callable[..., NodeHandle], mint: MintInfo, ref_wallet: RefWallet
) -> None:
    from tests.test_payments import http, sdk

    node = make_node(cashu={"mints": [mint.url]})
    token = await ref_wallet.token(mint.url, 20)
    raw = await sdk(node, **{"X-Cashu": token}).chat.completions.with_raw_response.create(
        **hello("test-fail500", max_tokens=5), extra_body={"models": ["test-model"]}
    )
    cost = int(raw.headers["x-cost-msat"])
    assert 0 < cost < 20_000
    change = raw.headers["x-cashu"]
    assert await ref_wallet.receive(change) == (20_000 - cost) // 1000
    request_id = raw.headers["x-request-id"]
    status, _, body = await http(
        node, "GET", f"/v1/wallet/change/{request_id}", headers={"X-Cashu": token}
    )
    assert status == 200 and body["cashu_token"] == change  # named by the request's id
    node.assert_clean()


async def test_x_cashu_fallback_stops_at_a_billed_failure(
    make_node: Callable[..., NodeHandle],
    mint: MintInfo,
    ref_wallet: RefWallet,
    upstream: ThreadedServer,
) -> None:
    """A one-shot token pays one call: after a failure the upstream bills (a timeout), the
    next model is not asked; the token pays that failure once, and the rest comes back."""
    from tests.test_payments import http

    node = make_node(cashu={"mints": [mint.url]})
    token = await ref_wallet.token(mint.url, 20)
    since = len(upstream.mock.received)
    body = {
        "model": "test-hang",
        "models": ["test-model"],
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 5,
    }
    status, headers, _ = await http(
        node, "POST", "/v1/chat/completions", json=body, headers={"X-Cashu": token}
    )
    assert status == 504
    assert sent_models(upstream, since) == ["test-hang"]  # the fallback was not asked
    cost = int(headers["X-Cost-Msat"])
    assert 0 < cost < 20_000
    assert await ref_wallet.receive(headers["X-Cashu"]) == (20_000 - cost) // 1000
    node.assert_clean()
