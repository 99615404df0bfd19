"""Upstream handling at its edges: SSE framing across TCP chunks, failover before any byte,
the upstream's key in its error messages, presets that point at presets, health checks.

`RawUpstream` answers with exact bytes, one write per chunk with a pause between, so the node
reads them as separate chunks (the way TCP can split or join an upstream's events).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from aiohttp import web

from node.settings import ConfigError, load_settings
from tests.conftest import NodeHandle
from tests.support.servers import ThreadedServer
from tests.test_spine import PAD, client, hello
from tests.test_upstreams import get_json, received, wait_for

PRICE = {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0, "max_output_tokens": 1000}
RAW_KEY = "sk-raw-upstream-key-0123456789"
SSE = {"Content-Type": "text/event-stream"}


class RawUpstream:
    """Chat answers scripted per model: (status, headers, byte chunks)."""

    def __init__(self) -> None:
        self.scripts: dict[str, tuple[int, dict[str, str], list[bytes]]] = {}
        self.models_status = 200
        self.app = web.Application()
        self.app.add_routes(
            [web.post("/v1/chat/completions", self.chat), web.get("/v1/models", self.models)]
        )

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        status, headers, chunks = self.scripts[body["model"]]
        out = web.StreamResponse(status=status, headers=headers)
        await out.prepare(request)
        for chunk in chunks:
            await out.write(chunk)
            await asyncio.sleep(0.05)  # each chunk its own read on the node's side
        await out.write_eof()
        return out

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": []}, status=self.models_status)


@pytest.fixture
def raw() -> Iterator[ThreadedServer]:
    mock = RawUpstream()
    server = ThreadedServer(lambda: mock.app).start()
    server.mock = mock
    yield server
    server.stop()


def script(server: ThreadedServer, model: str, chunks: list[bytes], status: int = 200,
           headers: dict[str, str] | None = None) -> None:  # fmt: skip
    server.mock.scripts[model] = (status, headers or SSE, chunks)


@pytest.fixture
def raw_node(
    make_node: Callable[..., NodeHandle], raw: ThreadedServer, upstream_b: ThreadedServer
) -> Callable[..., NodeHandle]:
    """A node in front of `raw` (with its own key) and the mock `b`."""

    def make(*models: dict[str, Any], **raw_extra: Any) -> NodeHandle:
        upstreams = [
            {"name": "raw", "base_url": f"{raw.url}/v1", "api_key": RAW_KEY,
             "first_byte_timeout_s": 2.0, "health_interval_s": 0.1} | raw_extra,
            {"name": "b", "base_url": f"{upstream_b.url}/v1"},
        ]  # fmt: skip
        return make_node(upstreams=upstreams, models=[{**PRICE, **m} for m in models])

    return make


def chunk(model: str, delta: dict[str, Any], **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": None}
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [choice]} | extra  # fmt: skip


def usage_chunk(model: str, prompt: int, completion: int) -> dict[str, Any]:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion,
             "total_tokens": prompt + completion}  # fmt: skip
    return chunk(model, {}) | {"choices": [], "usage": usage}


# --- SSE framing -----------------------------------------------------------------------------


def test_crlf_events_split_between_cr_and_lf_all_reach_the_client(
    raw_node: Callable[..., NodeHandle], raw: ThreadedServer
) -> None:
    """TCP may cut `\\r\\n\\r\\n` anywhere: each event must still leave whole, none lost."""
    model = "crlf-split"
    events = [chunk(model, {"content": "Hel"}), chunk(model, {"content": "lo"}),
              usage_chunk(model, 1000, 500)]  # fmt: skip
    wire = b"".join(b"data: " + json.dumps(e).encode() + b"\r\n\r\n" for e in events)
    wire += b"data: [DONE]\r\n\r\n"
    parts = wire.split(b"\r\n\r\n")
    chunks = [parts[0] + b"\r\n\r"] + [b"\n" + p + b"\r\n\r" for p in parts[1:-1]] + [b"\n"]
    script(raw, model, chunks)
    node = raw_node({"id": model, "upstream": "raw"})
    key = node.new_key(1_000_000)
    got = list(
        client(node, key).chat.completions.create(**hello(model), stream=True, extra_body=PAD)
    )
    text = "".join(c.choices[0].delta.content or "" for c in got if c.choices)
    assert text == "Hello"
    usage = got[-1].usage
    assert usage is not None and usage.prompt_tokens == 1000  # the upstream's, not an estimate
    assert node.balance(key) == 1_000_000 - 2000
    node.assert_clean()


# --- failover --------------------------------------------------------------------------------


def test_stream_that_ends_before_any_byte_fails_over(
    raw_node: Callable[..., NodeHandle], raw: ThreadedServer, upstream_b: ThreadedServer
) -> None:
    """A 200 stream closed empty sent the client nothing: the next upstream answers. The
    empty one had taken the request (it may bill the prompt): it is charged its floor."""
    model = "test-model"
    script(raw, model, [])
    node = raw_node({"id": model, "upstream": "raw", "upstreams": ["b"]})
    key = node.new_key(1_000_000)
    before = received(upstream_b, model)
    got = list(
        client(node, key).chat.completions.create(
            **hello(model), stream=True, extra_body={"mock": {"prompt_tokens": 1000,
                                                              "completion_tokens": 500, **PAD}}
        )
    )  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in got if c.choices)
    assert received(upstream_b, model) == before + 1
    floor = 1_000_000 - 2000 - node.balance(key)
    assert 0 < floor < 400  # the prompt's estimate: ~150 bytes of body, 1 msat a token
    node.assert_clean()


# --- secrets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 500])
def test_upstream_error_echoing_its_key_does_not_pass_it_on(
    raw_node: Callable[..., NodeHandle], raw: ThreadedServer, status: int
) -> None:
    model = f"echo-key-{status}"
    body = {"error": {"message": f"Incorrect API key provided: {RAW_KEY}."}}
    script(raw, model, [json.dumps(body).encode()], status, {"Content-Type": "application/json"})
    node = raw_node({"id": model, "upstream": "raw"})
    key = node.new_key(1_000_000)
    with pytest.raises(openai.APIStatusError) as caught:
        client(node, key).chat.completions.create(**hello(model))
    assert RAW_KEY not in caught.value.response.text
    assert "Incorrect API key provided" in caught.value.response.text  # the rest still helps


# --- presets ---------------------------------------------------------------------------------


def test_preset_on_a_preset_loop_does_not_break_the_model_list(
    make_node: Callable[..., NodeHandle],
) -> None:
    presets = [{"name": "a", "model": "preset/b"}, {"name": "b", "model": "preset/a"},
               {"name": "ok", "model": "test-model"}]  # fmt: skip
    node = make_node(presets=presets)
    status, listing = get_json(f"{node.url}/v1/models")
    assert status == 200
    ids = {m["id"] for m in listing["data"]}
    assert "preset/ok" in ids and "preset/a" not in ids
    key = node.new_key(1_000_000)
    with pytest.raises(openai.BadRequestError):
        client(node, key).chat.completions.create(**hello("preset/a"))


# --- health ----------------------------------------------------------------------------------


def test_upstream_without_a_model_list_is_not_reported_down(
    raw_node: Callable[..., NodeHandle], raw: ThreadedServer
) -> None:
    """An upstream that answers 404 to GET /models (no listing endpoint) is up."""
    raw.mock.models_status = 404
    node = raw_node({"id": "x", "upstream": "raw"}, list_models=False)

    def status() -> str:
        listing = get_json(f"{node.url}/v1/providers")[1]["providers"]
        return str(next(p for p in listing if p["name"] == "raw")["status"])

    wait_for(lambda: status() != "unknown")
    assert status() == "active"


def test_usage_in_the_last_content_chunk_is_what_the_final_event_reports(
    raw_node: Callable[..., NodeHandle], raw: ThreadedServer
) -> None:
    """Some upstreams put usage on the finish chunk (choices not empty): the node's closing
    usage event must show that usage, the one charged, not an estimate."""
    model = "usage-on-finish"
    last = chunk(model, {}) | {"usage": usage_chunk(model, 1000, 500)["usage"]}
    last["choices"][0]["finish_reason"] = "stop"
    events = [chunk(model, {"content": "Hi"}), last]
    wire = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]
    script(raw, model, wire)
    node = raw_node({"id": model, "upstream": "raw"})
    key = node.new_key(1_000_000)
    got = list(
        client(node, key).chat.completions.create(**hello(model), stream=True, extra_body=PAD)
    )
    usage = got[-1].usage
    assert usage is not None and usage.model_extra is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (1000, 500)
    assert usage.model_extra["cost_msat"] == 2000 and "estimated" not in usage.model_extra
    assert node.balance(key) == 1_000_000 - 2000
    node.assert_clean()


# --- endpoints an upstream does not serve ----------------------------------------------------

NOT_FOUND_TEXT = [b"404: Not Found"]  # aiohttp's (and many servers') answer to an unknown route
JSON = {"Content-Type": "application/json"}


def _refusal(node: NodeHandle, key: str, model: str) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        client(node, key).chat.completions.create(**hello(model))
    return caught.value


def test_an_upstreams_404_for_the_endpoint_is_a_501_not_the_clients_400(
    raw_node: Callable[..., NodeHandle], raw: ThreadedServer
) -> None:
    script(raw, "no-route", NOT_FOUND_TEXT, 404, {"Content-Type": "text/plain"})
    unknown = {"error": {"message": "no such model", "param": None, "code": "model_not_found"}}
    script(raw, "unknown-model", [json.dumps(unknown).encode()], 404, JSON)
    field = {"error": {"message": "no such response", "param": "previous_response_id"}}
    script(raw, "bad-field", [json.dumps(field).encode()], 404, JSON)
    node = raw_node(
        *({"id": m, "upstream": "raw"} for m in ("no-route", "unknown-model", "bad-field"))
    )
    key = node.new_key(1_000_000)
    refused = _refusal(node, key, "no-route")
    assert refused.status_code == 501 and refused.code == "endpoint_not_served"
    assert refused.response.headers["x-should-retry"] == "false"
    unsold = _refusal(node, key, "unknown-model")  # a model the node sells: its upstream's fault
    assert (unsold.status_code, unsold.code) == (502, "upstream_error")
    assert _refusal(node, key, "bad-field").status_code == 400  # about the client's field
    assert node.balance(key) == 1_000_000  # nothing billed for a refusal
    node.assert_clean()


def test_a_404_fails_over_to_an_upstream_serving_the_endpoint(
    raw_node: Callable[..., NodeHandle], raw: ThreadedServer, upstream_b: ThreadedServer
) -> None:
    script(raw, "test-model", NOT_FOUND_TEXT, 404, {"Content-Type": "text/plain"})
    node = raw_node({"id": "test-model", "upstream": "raw", "upstreams": ["b"]})
    key = node.new_key(1_000_000)
    before = received(upstream_b, "test-model")
    assert client(node, key).chat.completions.create(**hello()).choices[0].message.content
    assert received(upstream_b, "test-model") == before + 1


def test_configured_endpoints_route_and_list_only_what_the_upstream_serves(
    raw_node: Callable[..., NodeHandle],
) -> None:
    node = raw_node({"id": "embed-only", "upstream": "raw"}, endpoints=["embeddings"])
    refused = _refusal(node, "sk-no-such-key", "embed-only")  # before any payment is looked at
    assert refused.status_code == 501 and "/v1/chat/completions" in refused.message
    providers = {p["name"]: p for p in get_json(f"{node.url}/v1/providers")[1]["providers"]}
    assert providers["raw"]["endpoints"] == ["embeddings"]
    assert "images/generations" in providers["b"]["endpoints"]  # b has no list: all of them


def test_an_unknown_endpoint_in_the_config_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"upstreams\.0\.endpoints"):
        load_settings(None, upstreams=[{"name": "u", "base_url": "http://u", "endpoints": ["x"]}])
