"""An Anthropic stream that opens with an `error` event, before any message_start.

Anthropic may answer a stream with 200 and then an `error` event (overloaded_error: what a
plain request gets as a 529), and bills nothing for it. The node reads a stream's opening
before relaying anything, so it treats such a stream as an upstream that failed before
answering: nothing is charged, the model's next upstream (or the client's next fallback model)
is asked, and when none answers the client gets an error status in its route's envelope. An
`error` after message_start stays part of the answer (test_messages_api.py, `*midstream*`).

`*openerror*` models open their streams so on the mock; `…@anthropic` only on the first mock,
so the same model on the `backup` mock answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import orjson
import pytest

from node.dialects.sse import parse_events
from tests.conftest import NodeHandle
from tests.support.anthropic_upstream import API_KEY, MockAnthropic
from tests.support.messages_node import CLAUDE, HI, claude_cost
from tests.support.servers import ThreadedServer, serve_mock

BALANCE = 1_000_000


@pytest.fixture(scope="module")
def backup_upstream() -> Iterator[ThreadedServer]:
    yield from serve_mock(MockAnthropic(name="backup", listed=[]))


@pytest.fixture
def onode(
    make_node: Callable[..., NodeHandle],
    claude_upstream: ThreadedServer,
    backup_upstream: ThreadedServer,
) -> NodeHandle:
    upstreams = [
        {"name": name, "kind": "anthropic", "base_url": f"{server.url}/v1", "api_key": API_KEY,
         "list_models": False}
        for name, server in (("claude", claude_upstream), ("backup", backup_upstream))
    ]  # fmt: skip
    models: list[dict[str, Any]] = [
        {"id": m, "upstream": "claude", **CLAUDE} for m in ("claude-openerror", "claude-mock")
    ]
    failing_first = {"id": "claude-openerror@anthropic", "upstream": "claude", **CLAUDE}
    models.append(failing_first | {"upstreams": ["backup"]})
    return make_node(upstreams=upstreams, models=models)


async def post(node: NodeHandle, key: str, path: str, body: Any) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(node.url + path, headers=headers, json=body) as resp,
    ):
        return resp.status, await resp.read()


def streamed(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 50, "messages": HI, "stream": True,
            "mock": {"input_tokens": 40}} | extra  # fmt: skip


async def test_an_error_before_message_start_costs_nothing_and_is_an_error_status(
    onode: NodeHandle,
) -> None:
    key = onode.new_key(BALANCE)
    status, raw = await post(onode, key, "/v1/messages", streamed("claude-openerror"))
    assert status == 502, raw
    answer = orjson.loads(raw)
    assert answer["type"] == "error" and answer["error"]["type"] == "api_error", answer
    assert "Overloaded" in answer["error"]["message"]
    assert onode.balance(key) == BALANCE
    onode.assert_clean()


async def test_a_chat_client_gets_openais_envelope_and_pays_nothing(onode: NodeHandle) -> None:
    key = onode.new_key(BALANCE)
    body = {"model": "claude-openerror", "messages": HI, "max_tokens": 50, "stream": True}
    status, raw = await post(onode, key, "/v1/chat/completions", body)
    assert status == 502, raw
    error = orjson.loads(raw)["error"]
    assert error["type"] == "upstream_error" and "Overloaded" in error["message"], error
    assert onode.balance(key) == BALANCE
    onode.assert_clean()


async def test_the_models_next_upstream_answers(
    onode: NodeHandle, backup_upstream: ThreadedServer
) -> None:
    key = onode.new_key(BALANCE)
    before = len(backup_upstream.mock.received)
    status, raw = await post(onode, key, "/v1/messages", streamed("claude-openerror@anthropic"))
    events = parse_events(raw)
    assert status == 200 and events[0]["type"] == "message_start", raw
    assert events[-1]["type"] == "message_stop"
    assert len(backup_upstream.mock.received) == before + 1
    # the answer's usage only: the stream that opened with an error costs nothing
    assert BALANCE - onode.balance(key) == claude_cost({"input_tokens": 40, "output_tokens": 10})
    onode.assert_clean()


async def test_the_clients_next_fallback_model_answers(onode: NodeHandle) -> None:
    key = onode.new_key(BALANCE)
    body = streamed("claude-openerror", models=["claude-mock"])
    status, raw = await post(onode, key, "/v1/messages", body)
    events = parse_events(raw)
    assert status == 200 and events[-1]["type"] == "message_stop", raw
    assert BALANCE - onode.balance(key) == claude_cost({"input_tokens": 40, "output_tokens": 10})
    onode.assert_clean()
