"""What clients nobody here wrote send and read, over HTTP: a base URL without `/v1`, the model
named as they asked for it, OpenAI's reasoning models given `max_completion_tokens`, and the
node's root as Routstr's client-sdk reads it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import NodeHandle
from tests.interop.flows import HELLO, bearer, http, ok, stream_chunks
from tests.support.servers import ThreadedServer

PRICE = {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0, "max_output_tokens": 1000}


@pytest.fixture
def alias_node(make_node: Callable[..., NodeHandle]) -> NodeHandle:
    models = [
        {"id": "test-model", "aliases": ["my-alias"], **PRICE},
        {"id": "thinker", "upstream_model": "o4-mini", **PRICE},
        {"id": "gpt-5-mini", **PRICE},
    ]
    return make_node(models=models)


def last_body(upstream: ThreadedServer) -> dict[str, Any]:
    body: dict[str, Any] = upstream.mock.received[-1]["body"]
    return body


async def test_paths_without_v1(alias_node: NodeHandle) -> None:
    key = alias_node.new_key(100_000)
    listing = ok(await http(alias_node, "GET", "/models"))
    assert any(m["id"] == "test-model" for m in listing["data"])
    answer = ok(
        await http(alias_node, "POST", "/chat/completions", json=HELLO, headers=bearer(key))
    )
    assert answer["choices"][0]["message"]["content"]
    assert alias_node.balance(key) == 100_000 - answer["usage"]["cost_msat"]


async def test_answers_name_the_model_as_asked(alias_node: NodeHandle) -> None:
    key = alias_node.new_key(100_000)
    asked = {**HELLO, "model": "my-alias"}
    answer = ok(
        await http(alias_node, "POST", "/v1/chat/completions", json=asked, headers=bearer(key))
    )
    assert answer["model"] == "my-alias"
    chunks = await stream_chunks(alias_node, bearer(key), model="my-alias")
    assert {c["model"] for c in chunks if "model" in c} == {"my-alias"}


@pytest.mark.parametrize("model", ["thinker", "gpt-5-mini"])
async def test_reasoning_models_get_max_completion_tokens(
    alias_node: NodeHandle, upstream: ThreadedServer, model: str
) -> None:
    key = alias_node.new_key(100_000)
    body = {"model": model, "messages": HELLO["messages"]}  # no limit given
    ok(await http(alias_node, "POST", "/v1/chat/completions", json=body, headers=bearer(key)))
    sent = last_body(upstream)
    assert "max_tokens" not in sent and sent["max_completion_tokens"] == 1000


async def test_other_models_keep_max_tokens(
    alias_node: NodeHandle, upstream: ThreadedServer
) -> None:
    key = alias_node.new_key(100_000)
    body = {"model": "test-model", "messages": HELLO["messages"]}
    ok(await http(alias_node, "POST", "/v1/chat/completions", json=body, headers=bearer(key)))
    assert last_body(upstream)["max_tokens"] == 1000


async def test_root_answers_what_routstr_clients_read(alias_node: NodeHandle) -> None:
    root = ok(await http(alias_node, "GET", "/"))
    assert root["name"] and root["mints"] is not None and root["http_url"]
    model = next(m for m in root["models"] if m["id"] == "test-model")
    assert isinstance(model["sats_pricing"]["max_cost"], int)


async def test_openapi_lists_every_route(alias_node: NodeHandle) -> None:
    spec = ok(await http(alias_node, "GET", "/openapi.json"))
    paths = spec["paths"]
    for path, method in (
        ("/v1/responses", "post"),
        ("/v1/embeddings", "post"),
        ("/v1/info", "get"),
        ("/v1/wallet/info", "get"),
        ("/v1/estimate", "get"),
        ("/chat/completions", "post"),
        ("/", "get"),
        ("/v1/models/{model_id}", "get"),
        ("/v1/wallet/withdraw", "post"),
    ):
        assert method in paths.get(path, {}), path
    assert not [p for p in paths if p.startswith("/admin")]
    assert len(paths) >= 30
