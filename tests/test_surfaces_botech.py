"""Botech's surfaces: GET /v1, POST /v1/text/generations, GET /v1/models/{model}."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import NodeHandle
from tests.support.httpfetch import fetch
from tests.support.servers import ThreadedServer
from tests.test_spine import PAD, client

BALANCE = 1_000_000
PRICE = {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0, "max_output_tokens": 1000}


@pytest.fixture
def text_node(make_node: Callable[..., NodeHandle]) -> NodeHandle:
    return make_node(
        models=[
            {"id": "test-model", **PRICE, "name": "Test Model", "description": "For tests"},
            {"id": "test-instruct", **PRICE},  # guessed: served on /completions
            {"id": "test-chatonly-instruct", **PRICE, "completions": False},
        ]
    )


def post(node: NodeHandle, key: str, body: dict[str, Any]) -> Any:
    headers = {"Authorization": f"Bearer {key}"}
    return fetch(f"{node.url}/v1/text/generations", "POST", headers, body)


def received(upstream: ThreadedServer) -> dict[str, Any]:
    last: dict[str, Any] = upstream.mock.received[-1]
    return last


def test_text_generation_by_completions(text_node: NodeHandle, upstream: ThreadedServer) -> None:
    key = text_node.new_key(BALANCE)
    mock = {"prompt_tokens": 1000, "completion_tokens": 500, **PAD}
    reply = post(text_node, key, {"model": "test-instruct", "prompt": "A title:",
                                  "max_tokens": 500, "mock": mock})  # fmt: skip
    assert reply.status == 200
    assert received(upstream)["path"] == "/v1/completions"
    answer = reply.json()
    assert answer["object"] == "text_completion"
    assert answer["choices"][0]["text"] == "tok " * 500
    assert BALANCE - text_node.balance(key) == 2000 == answer["usage"]["cost_msat"]
    text_node.assert_clean()


def test_text_generation_wrapped_in_chat(text_node: NodeHandle, upstream: ThreadedServer) -> None:
    key = text_node.new_key(BALANCE)
    mock = {"prompt_tokens": 1000, "completion_tokens": 500, **PAD}
    for model in ("test-model", "test-chatonly-instruct"):
        reply = post(text_node, key, {"model": model, "prompt": "A title:", "max_tokens": 500,
                                      "mock": mock})  # fmt: skip
        assert reply.status == 200
        sent = received(upstream)
        assert sent["path"] == "/v1/chat/completions"
        assert sent["body"]["messages"] == [{"role": "user", "content": "A title:"}]
        assert "prompt" not in sent["body"] and sent["body"]["max_tokens"] == 500
        answer = reply.json()
        assert answer["object"] == "text_completion"
        assert answer["choices"][0]["text"] == "tok " * 500
        assert "message" not in answer["choices"][0]
    assert BALANCE - text_node.balance(key) == 4000
    text_node.assert_clean()


def test_text_generation_wrapped_and_streamed(text_node: NodeHandle) -> None:
    key = text_node.new_key(BALANCE)
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": "test-model", "prompt": "hi", "max_tokens": 5, "stream": True}
    reply = fetch(f"{text_node.url}/v1/text/generations", "POST", headers, body)
    assert reply.status == 200
    text = reply.body.decode()
    assert '"text":"tok "' in text and '"delta"' not in text and text.endswith("[DONE]\n\n")
    text_node.assert_clean()


def test_text_generation_refusals(text_node: NodeHandle) -> None:
    key = text_node.new_key(BALANCE)
    assert post(text_node, key, {"model": "test-model"}).json()["error"]["param"] == "prompt"
    assert post(text_node, key, {"model": "test-model", "prompt": ["a"]}).status == 400
    assert post(text_node, key, {"model": "nope", "prompt": "a"}).status == 404
    assert text_node.balance(key) == BALANCE


def test_the_api_index(text_node: NodeHandle) -> None:
    for path in ("/v1", "/v1/"):
        index = fetch(f"{text_node.url}{path}").json()
        assert index["base_url"].endswith("/v1")
        assert index["docs"]["openapi"].endswith("/openapi.json")
        assert "bearer" in index["auth"]["schemes"]
        paths = {e["path"] for e in index["endpoints"]}
        assert {"/v1/text/generations", "/v1/catalog", "/v1/audio/translations"} <= paths


def test_one_models_full_metadata(text_node: NodeHandle) -> None:
    key = text_node.new_key(BALANCE)
    model = client(text_node, key).models.retrieve("test-model")
    extra: dict[str, Any] = model.model_extra or {}
    assert extra["name"] == "Test Model" and extra["description"] == "For tests"
    assert extra["architecture"]["input_modalities"] == ["text"]
    assert "tools" in extra["supported_parameters"]
    assert extra["context_length"] == 128_000 and float(extra["pricing"]["prompt"]) == 0.000001
    listed = {m.id: m.model_extra or {} for m in client(text_node, key).models.list()}
    assert listed["test-instruct"]["name"] == "test-instruct"
