"""The official anthropic SDK's tool use on a model of an OpenAI-compatible upstream.

The node translates `tools`/`tool_choice` into chat's functions, the upstream's `tool_calls`
back into `tool_use` blocks (streamed as `input_json_delta`), and a `tool_result` into a
`tool` message: a full round trip, each call charged the upstream's usage at the model's
prices ($1 in, $2 out per Mtok: a msat a prompt token, two an output token).
"""

from __future__ import annotations

from typing import Any

from anthropic.types import MessageParam, ToolChoiceToolParam

from tests.conftest import NodeHandle
from tests.support.dialect_payloads import CITY_WEATHER
from tests.support.messages_node import sdk
from tests.support.servers import ThreadedServer

ASK: list[MessageParam] = [{"role": "user", "content": "What is the weather in Paris?"}]
FORCED: ToolChoiceToolParam = {"type": "tool", "name": "get_weather"}


def chat_cost(usage: Any) -> int:
    return int(usage.input_tokens) + 2 * int(usage.output_tokens)


def last_sent(server: ThreadedServer) -> dict[str, Any]:
    sent: dict[str, Any] = server.mock.received[-1]
    return sent


def test_a_tool_use_round_trip_on_an_openai_upstream(
    mnode: NodeHandle, upstream: ThreadedServer
) -> None:
    key = mnode.new_key(1_000_000)
    client = sdk(mnode, key)
    asked = client.messages.create(
        model="test-model", max_tokens=50, messages=ASK, tools=[CITY_WEATHER], tool_choice=FORCED
    )
    sent = last_sent(upstream)["body"]
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tools"][0]["function"]["parameters"] == CITY_WEATHER["input_schema"]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert asked.stop_reason == "tool_use"
    use = next(block for block in asked.content if block.type == "tool_use")
    assert use.name == "get_weather" and isinstance(use.input, dict) and use.id
    history: list[Any] = [
        *ASK,
        {"role": "assistant", "content": [b.model_dump() for b in asked.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18 C, sun"}],
        },
    ]
    answered = client.messages.create(
        model="test-model", max_tokens=50, messages=history, tools=[CITY_WEATHER]
    )
    sent = last_sent(upstream)["body"]
    calls = sent["messages"][1]["tool_calls"]
    assert sent["messages"][1]["role"] == "assistant" and calls[0]["id"] == use.id
    assert calls[0]["function"]["name"] == "get_weather"
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": use.id, "content": "18 C, sun"}
    assert answered.stop_reason in ("end_turn", "max_tokens")
    assert answered.content[0].type == "text" and answered.content[0].text
    spent = chat_cost(asked.usage) + chat_cost(answered.usage)
    assert mnode.balance(key) == 1_000_000 - spent
    mnode.assert_clean()


def test_a_streamed_tool_use_arrives_as_input_json_deltas(mnode: NodeHandle) -> None:
    key = mnode.new_key(1_000_000)
    client = sdk(mnode, key)
    with client.messages.stream(
        model="test-model", max_tokens=50, messages=ASK, tools=[CITY_WEATHER], tool_choice=FORCED
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    starts = [e for e in events if e.type == "content_block_start"]
    assert any(e.content_block.type == "tool_use" for e in starts)
    deltas = [e for e in events if e.type == "content_block_delta"]
    assert any(e.delta.type == "input_json_delta" for e in deltas)
    assert final.stop_reason == "tool_use"
    use = next(block for block in final.content if block.type == "tool_use")
    assert use.name == "get_weather" and isinstance(use.input, dict)
    assert mnode.balance(key) == 1_000_000 - chat_cost(final.usage)
    mnode.assert_clean()
