"""Each SDK on a model whose upstream speaks the other dialect, through the node.

The official openai SDK on `claude-mock` (an Anthropic upstream: the node translates chat to
Messages and back, streams and tool calls included), and the official anthropic SDK on
`test-model` (an OpenAI-compatible upstream). The charge is the upstream's usage in its own
dialect, at the model's prices (tests/support/messages_node.py).
"""

from __future__ import annotations

import json
from typing import Any

import openai

from tests.conftest import NodeHandle
from tests.support.dialect_payloads import CITY_WEATHER_FUNCTION
from tests.support.messages_node import HI, claude_cost, sdk
from tests.support.sdk import async_openai, extra
from tests.support.servers import ThreadedServer

# the mock Anthropic upstream reads its usage from metadata.user_id (the chat `user`)
CACHE_READS = "mock:output_tokens=3,cache_read_input_tokens=100,cache_creation_input_tokens=20"


def chat_client(node: NodeHandle, key: str) -> openai.AsyncOpenAI:
    return async_openai(f"{node.url}/v1", key)


def last_sent(server: ThreadedServer) -> dict[str, Any]:
    sent: dict[str, Any] = server.mock.received[-1]
    return sent


async def test_openai_chat_on_an_anthropic_upstream(
    mnode: NodeHandle, claude_upstream: ThreadedServer
) -> None:
    key = mnode.new_key(1_000_000)
    raw = await chat_client(mnode, key).chat.completions.with_raw_response.create(
        model="claude-mock", messages=HI, max_tokens=50, user=CACHE_READS
    )
    answer = raw.parse()
    assert answer.choices[0].message.content == "tok " * 3
    assert answer.choices[0].finish_reason == "stop"
    sent = last_sent(claude_upstream)
    assert sent["path"] == "/v1/messages" and sent["body"]["max_tokens"] == 50
    usage = answer.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 100
    extra = usage.model_extra or {}
    counts = {
        "input_tokens": usage.prompt_tokens - 100 - extra["cache_creation_input_tokens"],
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": extra["cache_creation_input_tokens"],
        "cache_read_input_tokens": 100,
    }
    cost = claude_cost(counts)
    assert int(raw.headers["x-cost-msat"]) == cost == extra["cost_msat"]
    assert mnode.balance(key) == 1_000_000 - cost
    mnode.assert_clean()


async def test_openai_stream_and_tool_calls_on_an_anthropic_upstream(mnode: NodeHandle) -> None:
    key = mnode.new_key(1_000_000)
    api = chat_client(mnode, key)
    stream = await api.chat.completions.create(
        model="claude-mock", messages=HI, max_tokens=50, stream=True
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "tok " * 10
    spent = extra(chunks[-1].usage)["cost_msat"]
    assert mnode.balance(key) == 1_000_000 - spent

    stream = await api.chat.completions.create(
        model="claude-mock", messages=HI, max_tokens=50, stream=True, tools=[CITY_WEATHER_FUNCTION]
    )
    chunks = [chunk async for chunk in stream]
    pieces = [
        call.function.arguments or ""
        for c in chunks
        if c.choices
        for call in c.choices[0].delta.tool_calls or []
        if call.function is not None
    ]
    assert len(pieces) > 2  # the arguments stream in pieces, as input_json_delta did
    assert "city" in json.loads("".join(pieces))
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    cost = extra(chunks[-1].usage)["cost_msat"]
    assert mnode.balance(key) == 1_000_000 - spent - cost

    plain = await api.chat.completions.create(
        model="claude-mock", messages=HI, max_tokens=50, tools=[CITY_WEATHER_FUNCTION]
    )
    calls = plain.choices[0].message.tool_calls
    assert calls and calls[0].type == "function"
    assert calls[0].function.name == "get_weather"
    mnode.assert_clean()


def test_anthropic_sdk_on_an_openai_upstream(mnode: NodeHandle, upstream: ThreadedServer) -> None:
    key = mnode.new_key(1_000_000)
    client = sdk(mnode, key)
    raw = client.messages.with_raw_response.create(
        model="test-model", max_tokens=20, messages=HI, system="be brief"
    )
    message = raw.parse()
    assert message.content[0].type == "text" and message.content[0].text
    sent = upstream.mock.received[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["messages"][0] == {"role": "system", "content": "be brief"}
    # $1 in, $2 out per Mtok: a msat a prompt token, two an output token
    cost = message.usage.input_tokens + 2 * message.usage.output_tokens
    assert int(raw.headers["x-cost-msat"]) == cost
    with client.messages.stream(model="test-model", max_tokens=20, messages=HI) as stream:
        events = list(stream)
        final = stream.get_final_message()
    text = "".join(e.text for e in events if e.type == "text")
    assert text and final.stop_reason in ("end_turn", "max_tokens")
    assert [e.type for e in events][-2:] == ["message_delta", "message_stop"]
    delta = events[-2]
    assert delta.type == "message_delta"
    streamed = extra(delta.usage)["cost_msat"]
    assert streamed == final.usage.input_tokens + 2 * final.usage.output_tokens
    assert mnode.balance(key) == 1_000_000 - cost - streamed
    mnode.assert_clean()
