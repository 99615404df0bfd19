"""Anthropic's Messages API on the node: the official anthropic SDK pays with keys and ecash.

The node (`mnode`, tests/support/messages_node.py) sells `claude-*` models on a mock Anthropic
upstream, which streams the documented event sequence with the usage a test asks for.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import pytest

from tests.conftest import NodeHandle
from tests.support.anthropic_upstream import API_KEY
from tests.support.dialect_payloads import CITY_WEATHER
from tests.support.messages_node import HI, claude_cost, sdk
from tests.support.money import call
from tests.support.sdk import extra
from tests.support.servers import ThreadedServer

FIXTURES = Path(__file__).parent / "fixtures" / "claude_code"
# within the prompt's bound (its bytes): a count past it is never charged
CACHED = {"input_tokens": 5, "output_tokens": 3, "cache_creation_input_tokens": 40,
          "cache_read_input_tokens": 100}  # fmt: skip


def received(server: ThreadedServer) -> dict[str, Any]:
    last: dict[str, Any] = server.mock.received[-1]
    return last


# --- the SDK, paid by a key --------------------------------------------------------------------


def test_create_charges_the_four_counts_at_their_prices(mnode: NodeHandle) -> None:
    key = mnode.new_key(1_000_000)
    client = sdk(mnode, key)
    raw = client.messages.with_raw_response.create(
        model="claude-mock", max_tokens=100, messages=HI, extra_body={"mock": CACHED}
    )
    message = raw.parse()
    assert message.content[0].type == "text" and message.stop_reason == "end_turn"
    cost = claude_cost(message.usage)
    assert cost == 15 + 150 + 30 + 45
    assert int(raw.headers["x-cost-msat"]) == cost == extra(message.usage)["cost_msat"]
    assert mnode.balance(key) == 1_000_000 - cost
    mnode.assert_clean()


def test_stream_text_and_tool_use_with_input_json_delta(
    mnode: NodeHandle, claude_upstream: ThreadedServer
) -> None:
    key = mnode.new_key(1_000_000)
    client = sdk(mnode, key)
    with client.messages.stream(
        model="claude-mock", max_tokens=200, messages=HI, extra_body={"mock": CACHED}
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "tok " * 3
    spent = claude_cost(final.usage)
    assert mnode.balance(key) == 1_000_000 - spent
    kinds: list[str] = []
    with client.messages.stream(
        model="claude-mock", max_tokens=200, messages=HI, tools=[CITY_WEATHER]
    ) as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "message_delta":
                cost = extra(event.usage)["cost_msat"]
        final = stream.get_final_message()
    assert "input_json" in kinds and kinds[-1] == "message_stop"
    tool = final.content[-1]
    assert tool.type == "tool_use" and tool.name == "get_weather" and "city" in tool.input
    assert final.stop_reason == "tool_use"
    assert cost == claude_cost(final.usage)
    assert mnode.balance(key) == 1_000_000 - spent - cost
    assert received(claude_upstream)["headers"]["x-api-key"] == API_KEY
    mnode.assert_clean()


def test_a_full_tool_use_round_trip(mnode: NodeHandle) -> None:
    key = mnode.new_key(1_000_000)
    client = sdk(mnode, key)
    first = client.messages.create(
        model="claude-mock", max_tokens=100, messages=HI, tools=[CITY_WEATHER]
    )
    tool = next(block for block in first.content if block.type == "tool_use")
    turns: Any = [
        *HI,
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": tool.id, "content": "sunny, 21 C"}]},
    ]  # fmt: skip
    second = client.messages.create(
        model="claude-mock", max_tokens=100, messages=turns, tools=[CITY_WEATHER]
    )
    assert second.stop_reason == "end_turn" and second.content[0].type == "text"
    spent = claude_cost(first.usage) + claude_cost(second.usage)
    assert mnode.balance(key) == 1_000_000 - spent


def test_count_tokens_is_free(mnode: NodeHandle, claude_upstream: ThreadedServer) -> None:
    key = mnode.new_key(1_000_000)
    counted = sdk(mnode, key).messages.count_tokens(model="claude-mock", messages=HI)
    assert counted.input_tokens > 0
    assert received(claude_upstream)["path"] == "/v1/messages/count_tokens"
    assert mnode.balance(key) == 1_000_000
    # no account: the node's own estimate, and nothing goes upstream
    before = len(claude_upstream.mock.received)
    estimate = sdk(mnode, "sk-nobody").messages.count_tokens(model="claude-mock", messages=HI)
    assert estimate.input_tokens > 0
    assert len(claude_upstream.mock.received) == before


# --- paid with ecash ---------------------------------------------------------------------------


async def test_a_token_as_x_api_key_pays(mnode: NodeHandle, mint: Any, ref_wallet: Any) -> None:
    token = await ref_wallet.token(mint.url, 100)
    body = {"model": "claude-mock", "max_tokens": 50, "messages": HI, "mock": CACHED}
    status, headers, answer = await call(
        mnode, "POST", "/v1/messages", headers={"x-api-key": token}, json=body
    )
    assert status == 200, answer
    cost = claude_cost(answer["usage"])
    assert int(headers["x-cost-msat"]) == cost
    assert mnode.balance(token) == 100_000 - cost


async def test_x_cashu_gets_change_in_the_header_and_in_the_stream(
    mnode: NodeHandle, mint: Any, ref_wallet: Any
) -> None:
    token = await ref_wallet.token(mint.url, 50)
    client = sdk(mnode, **{"X-Cashu": token})
    raw = await asyncio.to_thread(
        client.messages.with_raw_response.create,
        model="claude-mock", max_tokens=50, messages=HI, extra_body={"mock": CACHED},
    )  # fmt: skip
    cost = claude_cost(raw.parse().usage)
    assert await ref_wallet.receive(raw.headers["x-cashu"]) == (50_000 - cost) // 1000

    token = await ref_wallet.token(mint.url, 50)
    client = sdk(mnode, **{"X-Cashu": token})

    def streamed() -> tuple[Any, str]:
        with client.messages.stream(model="claude-mock", max_tokens=50, messages=HI) as stream:
            deltas = [e for e in stream if e.type == "message_delta"]
            return stream.get_final_message(), extra(deltas[-1])["x_cashu"]

    final, change = await asyncio.to_thread(streamed)
    cost = claude_cost(final.usage)
    assert await ref_wallet.receive(change) == (50_000 - cost) // 1000


# --- Claude Code's requests --------------------------------------------------------------------


def fixture(name: str, credential: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    loaded["headers"] = {k: v.replace("<TOKEN>", credential) for k, v in loaded["headers"].items()}
    return loaded


async def send(node: NodeHandle, recorded: dict[str, Any]) -> tuple[int, Any, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            node.url + recorded["path"], headers=recorded["headers"], json=recorded["body"]
        ) as resp,
    ):
        return resp.status, resp.headers, await resp.read()


def events_of(body: bytes) -> list[dict[str, Any]]:
    from node.dialects.sse import parse_events

    return parse_events(body)


@pytest.mark.parametrize("name", ["first_turn_stream", "tool_result_turn_stream"])
async def test_claude_code_streamed_turns(
    mnode: NodeHandle, claude_upstream: ThreadedServer, name: str
) -> None:
    key = mnode.new_key(2_000_000)
    status, _, body = await send(mnode, fixture(name, key))
    assert status == 200, body
    events = events_of(body)
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    delta = events[-2]
    assert delta["type"] == "message_delta"
    sent = received(claude_upstream)
    assert sent["query"] == {} and sent["headers"]["anthropic-beta"].startswith("claude-code")
    assert sent["body"]["system"][1]["cache_control"] == {"type": "ephemeral"}
    charged = delta["usage"]["cost_msat"]
    assert mnode.balance(key) == 2_000_000 - charged
    mnode.assert_clean()


async def test_claude_code_small_model_and_count_tokens(
    mnode: NodeHandle, mint: Any, ref_wallet: Any
) -> None:
    token = await ref_wallet.token(mint.url, 100)  # Claude Code's ANTHROPIC_API_KEY: a token
    status, _, body = await send(mnode, fixture("small_model_plain", token))
    assert status == 200, body
    answer = json.loads(body)
    assert mnode.balance(token) == 100_000 - claude_cost(answer["usage"])
    status, _, body = await send(mnode, fixture("count_tokens", token))
    assert status == 200 and json.loads(body)["input_tokens"] > 0
    assert mnode.balance(token) == 100_000 - claude_cost(answer["usage"])


# --- a dropped stream, bad input ---------------------------------------------------------------


async def settled(node: NodeHandle) -> None:
    for _ in range(200):
        if node.ledger.open_reservations() == 0:
            return
        await asyncio.sleep(0.05)


async def test_a_client_gone_mid_stream_is_charged_what_was_produced(
    mnode: NodeHandle,
) -> None:
    key = mnode.new_key(1_000_000)
    body = {"model": "claude-slow", "max_tokens": 500, "messages": HI, "stream": True,
            "mock": {"input_tokens": 40, "pause_s": 1}}  # fmt: skip
    async with aiohttp.ClientSession() as session:
        resp = await session.post(mnode.url + "/v1/messages", headers={"x-api-key": key}, json=body)
        seen = b""
        while b"content_block_delta" not in seen:
            seen += await resp.content.readany()
        resp.close()  # the client goes away after the first delta; the upstream goes on
    await settled(mnode)
    # message_start's 40 prompt tokens, and the output tokens read until the node found the
    # client gone and closed the upstream's stream (one chunk after the pause, or all of it)
    charged = 1_000_000 - mnode.balance(key)
    assert charged in {3 * 40 + 15 * produced for produced in range(1, 11)}, charged
    mnode.assert_clean()


async def test_a_stream_the_upstream_drops_is_charged_what_was_produced(
    mnode: NodeHandle,
) -> None:
    key = mnode.new_key(1_000_000)
    body = {"model": "claude-cut", "max_tokens": 500, "messages": HI, "stream": True,
            "mock": {"input_tokens": 40}}  # fmt: skip
    status, _, raw = await send(
        mnode, {"path": "/v1/messages", "headers": {"x-api-key": key}, "body": body}
    )
    events = events_of(raw)
    assert status == 200 and events[-1]["type"] == "error", events[-1]
    produced = sum(1 for e in events if e["type"] == "content_block_delta")
    assert produced == 6
    await settled(mnode)
    # message_start's prompt count, and the output tokens that came before the break
    assert mnode.balance(key) == 1_000_000 - (3 * 40 + 15 * produced)
    mnode.assert_clean()


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ({"model": "claude-mock", "messages": HI}, 400, "invalid_request_error"),
        ({"model": "claude-mock", "max_tokens": 10, "messages": []}, 400, "invalid_request_error"),
        ({"model": "no-such-model", "max_tokens": 10, "messages": HI}, 404, "not_found_error"),
        ({"model": "claude-mock", "max_tokens": 10, "messages": HI,
          "tools": [{"type": "web_search_20250305", "name": "web_search"}]},
         400, "invalid_request_error"),
    ],
)  # fmt: skip
async def test_bad_input_gets_anthropics_envelope_and_costs_nothing(
    mnode: NodeHandle, body: dict[str, Any], status: int, kind: str
) -> None:
    key = mnode.new_key(100_000)
    got, _, answer = await call(mnode, "POST", "/v1/messages?beta=true", key, json=body)
    assert got == status and answer["type"] == "error", answer
    assert answer["error"]["type"] == kind and answer["error"]["message"]
    assert mnode.balance(key) == 100_000


async def test_payment_and_auth_errors_in_anthropics_envelope(mnode: NodeHandle) -> None:
    body = {"model": "claude-mock", "max_tokens": 10, "messages": HI}
    status, headers, answer = await call(mnode, "POST", "/v1/messages", json=body)
    assert status == 402 and answer["error"]["type"] == "billing_error"
    assert headers["X-Cashu"].startswith("creq")  # NUT-24: what to pay
    status, _, answer = await call(mnode, "POST", "/v1/messages", "sk-unknown", json=body)
    assert status in (401, 402) and answer["type"] == "error"
    with pytest.raises(anthropic.APIStatusError) as caught:
        await asyncio.to_thread(
            sdk(mnode, "sk-unknown").messages.create,
            model="claude-mock", max_tokens=10, messages=HI,
        )  # fmt: skip
    assert caught.value.status_code in (401, 402)


async def test_models_list_the_dialects(mnode: NodeHandle) -> None:
    _, _, listing = await call(mnode, "GET", "/v1/models")
    by_id = {m["id"]: m for m in listing["data"]}
    assert by_id["claude-mock"]["dialects"] == ["openai", "anthropic"]
    assert by_id["claude-mock"]["upstream_dialects"] == ["anthropic"]
    assert by_id["test-model"]["upstream_dialects"] == ["openai"]
    assert float(by_id["claude-mock"]["pricing"]["input_cache_write"]) == 3.75e-06


async def test_an_error_event_mid_stream_reaches_the_sdk_with_the_change(
    mnode: NodeHandle, mint: Any, ref_wallet: Any
) -> None:
    token = await ref_wallet.token(mint.url, 50)
    body = {"model": "claude-midstream", "max_tokens": 50, "messages": HI, "stream": True,
            "mock": {"input_tokens": 40}}  # fmt: skip
    status, _, raw = await send(
        mnode, {"path": "/v1/messages", "headers": {"X-Cashu": token}, "body": body}
    )
    events = events_of(raw)
    assert status == 200 and events[-1]["type"] == "error"
    assert events[-1]["error"]["type"] == "overloaded_error"
    cost = events[-1]["cost_msat"]
    assert cost == 3 * 40 + 15 * 1  # the prompt, and the one delta produced
    assert await ref_wallet.receive(events[-1]["x_cashu"]) == (50_000 - cost) // 1000

    def streamed() -> None:
        with client.messages.stream(model="claude-midstream", max_tokens=50, messages=HI) as s:
            list(s)

    client = sdk(mnode, **{"X-Cashu": await ref_wallet.token(mint.url, 50)})
    with pytest.raises(anthropic.APIStatusError):
        await asyncio.to_thread(streamed)
