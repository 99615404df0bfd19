"""The stream translators, fed real upstream bytes, checked event by event and by the official SDKs.

`ChunksToEvents`: OpenAI chat chunks -> Anthropic events (an Anthropic client on an OpenAI
upstream); `EventsToChunks`: Anthropic events -> chat chunks, fed the exact bytes the mock
Anthropic upstream streams (parsed with `node.dialects.sse.parse_events`).
"""

from __future__ import annotations

import http.client
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from anthropic.types import ToolParam
from openai.types.chat import ChatCompletionFunctionToolParam

from node.dialects.chat_to_messages import EventsToChunks
from node.dialects.messages_to_chat import ChunksToEvents
from node.dialects.sse import encode_anthropic_event, event_data, parse_events
from node.dialects.usage import AnthropicUsage
from tests.support.anthropic_upstream import API_KEY, MockAnthropic
from tests.support.httpfetch import fetch
from tests.support.servers import ThreadedServer
from tests.support.translating_transport import (
    anthropic_over_chat,
    anthropic_over_chunks,
    openai_over_messages,
)

ARGUMENTS = '{"city": "Zürich", "days": 3, "units": {"temp": "C"}, "note": "a \\"quoted\\" word"}'
WEATHER_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
}
WEATHER_TOOL: ToolParam = {"name": "get_weather", "input_schema": WEATHER_SCHEMA}
WEATHER_FUNCTION: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA},
}


@pytest.fixture(scope="module")
def anthropic_mock() -> Iterator[ThreadedServer]:
    mock = MockAnthropic()
    server = ThreadedServer(lambda: mock.app).start()
    yield server
    server.stop()


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish} | extra
    return {
        "id": "chatcmpl-s1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "up",
        "choices": [choice],
    }


def usage_chunk(prompt: int, completion: int, cached: int = 0) -> dict[str, Any]:
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
    return chunk({}) | {"choices": [], "usage": usage}


def cuts(size: int) -> list[str]:
    return [ARGUMENTS[i : i + size] for i in range(0, len(ARGUMENTS), size)]


def tool_chunks(size: int) -> list[dict[str, Any]]:
    """Two parallel tool calls, the first one's arguments cut in pieces of `size` characters."""
    first = {
        "index": 0,
        "id": "call_a",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    out = [chunk({"role": "assistant", "content": None, "tool_calls": [first]})]
    out += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": c}}]}) for c in cuts(size)]
    second = {
        "index": 1,
        "id": "call_b",
        "type": "function",
        "function": {"name": "get_time", "arguments": '{"tz": "UTC"}'},
    }
    out += [chunk({"tool_calls": [second]}), chunk({}, "tool_calls"), usage_chunk(50, 20, 30)]
    return out


# --- chat chunks -> Anthropic events -------------------------------------------------------------


def test_the_first_text_chunk_leaves_at_once() -> None:
    translator = ChunksToEvents(model="claude-x", input_tokens=12)
    events = translator.feed(chunk({"role": "assistant", "content": "Hel"}))
    assert [e["type"] for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
    ]
    assert events[0]["message"]["model"] == "claude-x" and events[0]["message"]["id"] == "msg_s1"
    assert events[0]["message"]["usage"] == {"input_tokens": 12, "output_tokens": 0}
    assert events[2]["delta"] == {"type": "text_delta", "text": "Hel"}
    assert translator.feed(chunk({"content": "lo"})) == [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}}
    ]


def test_start_can_come_before_the_first_chunk() -> None:
    translator = ChunksToEvents(model="m", message_id="msg_fixed")
    assert translator.start()[0]["message"]["id"] == "msg_fixed"
    assert [e["type"] for e in translator.feed(chunk({"role": "assistant", "content": ""}))] == []


def test_tool_call_arguments_in_many_pieces_reassemble_to_valid_json() -> None:
    translator = ChunksToEvents(model="m")
    events = [e for c in tool_chunks(size=2) for e in translator.feed(c)]
    starts = [e for e in events if e["type"] == "content_block_start"]
    assert [s["content_block"] for s in starts] == [
        {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}},
        {"type": "tool_use", "id": "call_b", "name": "get_time", "input": {}},
    ]
    pieces = {0: "", 1: ""}
    for e in events:
        if e["type"] == "content_block_delta":
            pieces[e["index"]] += e["delta"]["partial_json"]
    assert json.loads(pieces[0]) == json.loads(ARGUMENTS) and json.loads(pieces[1]) == {"tz": "UTC"}
    pieces_sent = sum(e["type"] == "content_block_delta" and e["index"] == 0 for e in events)
    assert pieces_sent == len(cuts(2)) > 30
    assert [e["type"] for e in events[-4:]] == [
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[-2]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert events[-2]["usage"] == {
        "input_tokens": 20,
        "output_tokens": 20,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 30,
    }
    assert translator.ended and translator.feed(chunk({"content": "late"})) == []


def test_reasoning_then_text_are_two_blocks() -> None:
    translator = ChunksToEvents(model="m")
    events = translator.feed(chunk({"role": "assistant", "reasoning_content": "Hmm."}))
    events += translator.feed(chunk({"content": "Yes."}))
    assert [(e["type"], e.get("index")) for e in events] == [
        ("message_start", None),
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
    ]
    assert events[2]["delta"] == {"type": "thinking_delta", "thinking": "Hmm."}


def test_an_upstream_that_ends_without_finishing_is_ended_cleanly() -> None:
    translator = ChunksToEvents(model="m", input_tokens=9)
    translator.feed(chunk({"role": "assistant", "content": "partial"}))
    events = translator.finish(usage=AnthropicUsage(9, 3))
    assert [e["type"] for e in events] == ["content_block_stop", "message_delta", "message_stop"]
    assert events[1]["delta"]["stop_reason"] == "end_turn"
    assert events[1]["usage"]["output_tokens"] == 3
    assert translator.finish() == [] and translator.error("api_error", "x") == []


def test_an_upstream_error_chunk_becomes_an_error_event() -> None:
    translator = ChunksToEvents(model="m")
    translator.feed(chunk({"role": "assistant", "content": "a"}))
    events = translator.feed({"error": {"message": "secret upstream detail", "code": 500}})
    assert events == [
        {
            "type": "error",
            "error": {"type": "api_error", "message": "the upstream failed during the stream"},
        }
    ]
    assert translator.finish() == []


def test_a_stop_sequence_named_by_the_upstream_is_reported() -> None:
    translator = ChunksToEvents(model="m", stop_sequences=["END"])
    translator.feed(chunk({"content": "x"}))
    translator.feed(chunk({}, "stop", stop_reason="END"))
    events = translator.finish()
    assert events[-2]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}


def test_the_anthropic_sdk_streams_a_translated_openai_upstream(upstream: ThreadedServer) -> None:
    client = anthropic_over_chat(upstream.url)
    with client.messages.stream(
        model="mock-model", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    block = final.content[0]
    assert texts == ["tok "] * 5 and block.type == "text" and block.text == "tok " * 5
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 5
    plain = client.messages.create(
        model="mock-model", max_tokens=3, messages=[{"role": "user", "content": "hi"}]
    )
    text = plain.content[0]
    assert text.type == "text" and text.text == "tok " * 3 and plain.usage.output_tokens == 3


def test_the_anthropic_sdk_accumulates_translated_tool_calls() -> None:
    client = anthropic_over_chunks(tool_chunks(size=3))
    with client.messages.stream(
        model="m",
        max_tokens=100,
        messages=[{"role": "user", "content": "go"}],
        tools=[WEATHER_TOOL],
    ) as stream:
        json_events = [e for e in stream if e.type == "input_json"]
        final = stream.get_final_message()
    assert len(json_events) == len(cuts(3)) + 1  # and the second call's arguments in one piece
    assert [b.type for b in final.content] == ["tool_use", "tool_use"]
    inputs = [b.input for b in final.content if b.type == "tool_use"]
    assert inputs == [json.loads(ARGUMENTS), {"tz": "UTC"}]
    assert final.stop_reason == "tool_use" and final.usage.cache_read_input_tokens == 30


def test_the_anthropic_sdk_raises_on_a_translated_error_event() -> None:
    client = anthropic_over_chunks([chunk({"content": "a"}), {"error": {"message": "boom"}}])
    with pytest.raises(anthropic.APIStatusError, match="api_error"):  # noqa: SIM117
        with client.messages.stream(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "go"}]
        ) as stream:
            list(stream)


# --- Anthropic events (the mock's own bytes) -> chat chunks ---------------------------------------


def mock_stream(url: str, **body: Any) -> bytes:
    request = {
        "model": "claude-mock",
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    } | body
    headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
    reply = fetch(f"{url}/v1/messages", "POST", headers=headers, body=request)
    assert reply.status == 200
    return reply.body


def read_until_cut(url: str, headers: dict[str, str], body: dict[str, Any]) -> bytes:
    """The body, or as much of it as came before the upstream broke the connection."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        try:
            raw: bytes = response.read()
        except http.client.IncompleteRead as cut:
            raw = cut.partial
    return raw


def translate(
    raw: bytes, include_usage: bool = True
) -> tuple[EventsToChunks, list[dict[str, Any]]]:
    translator = EventsToChunks(model="claude-mock", include_usage=include_usage, created=5)
    chunks = [c for event in parse_events(raw) for c in translator.feed(event)]
    return translator, chunks + translator.finish()


def test_the_mocks_text_stream_becomes_chunks(anthropic_mock: ThreadedServer) -> None:
    raw = mock_stream(
        anthropic_mock.url,
        mock={
            "output_tokens": 4,
            "input_tokens": 7,
            "cache_read_input_tokens": 90,
            "cache_creation_input_tokens": 3,
        },
    )
    assert b"event: ping\n" in raw
    translator, chunks = translate(raw)
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-mock_")
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:5]] == ["tok "] * 4
    assert chunks[5]["choices"][0]["finish_reason"] == "stop"
    assert chunks[6]["choices"] == [] and chunks[6]["usage"] == {
        "prompt_tokens": 100,
        "completion_tokens": 4,
        "total_tokens": 104,
        "prompt_tokens_details": {"cached_tokens": 90},
        "cache_creation_input_tokens": 3,
        "cache_read_input_tokens": 90,
    }
    assert len(chunks) == 7
    assert translator.usage == AnthropicUsage(7, 4, 3, 90)


def test_the_mocks_tool_stream_becomes_tool_call_deltas(anthropic_mock: ThreadedServer) -> None:
    tool_input = {"city": "Zürich", "days": 3, "note": 'a "quoted" word'}
    raw = mock_stream(
        anthropic_mock.url,
        tools=[WEATHER_TOOL],
        mock={"tool_input": tool_input},
        thinking={"type": "enabled", "budget_tokens": 1024},
        max_tokens=2048,  # above the budget, as Anthropic requires
    )
    assert raw.count(b'"type": "input_json_delta"') > 5
    _, chunks = translate(raw, include_usage=False)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "Let me think about this."
    calls = [call for d in deltas for call in d.get("tool_calls", [])]
    assert calls[0]["index"] == 0 and calls[0]["id"].startswith("toolu_mock_")
    assert calls[0]["function"] == {"name": "get_weather", "arguments": ""}
    assert all(set(c) == {"index", "function"} and c["index"] == 0 for c in calls[1:])
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == tool_input
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"  # no usage chunk: not asked


@pytest.mark.parametrize(
    ("model", "ending"),
    [("claude-midstream", "error"), ("claude-nousage", "no usage"), ("claude-cut", "cut")],
)
def test_odd_mock_streams_end_cleanly(
    anthropic_mock: ThreadedServer, model: str, ending: str
) -> None:
    headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
    body = {
        "model": model,
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    translator, chunks = translate(
        read_until_cut(f"{anthropic_mock.url}/v1/messages", headers, body)
    )
    if ending == "error":
        assert chunks[-1] == {
            "error": {
                "message": "the upstream failed during the stream (overloaded_error)",
                "type": "overloaded_error",
                "param": None,
                "code": "overloaded_error",
            }
        }
    else:
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
        assert translator.usage is None  # no final counts: the caller estimates the output
        partial = translator.partial_usage
        if ending == "no usage":
            assert partial is None
        else:
            assert partial is not None and partial.input_tokens > 0


def test_the_openai_sdk_streams_a_translated_anthropic_upstream(
    anthropic_mock: ThreadedServer,
) -> None:
    client = openai_over_messages(anthropic_mock.url)
    stream = client.chat.completions.create(
        model="claude-mock",
        messages=[{"role": "user", "content": "weather?"}],
        stream=True,
        tools=[WEATHER_FUNCTION],
        stream_options={"include_usage": True},
        user="mock:cache_read_input_tokens=12",
    )
    chunks = list(stream)
    arguments = "".join(
        call.function.arguments or ""
        for c in chunks
        if c.choices
        for call in c.choices[0].delta.tool_calls or []
        if call.function is not None
    )
    assert json.loads(arguments) == {"city": "mock value", "days": 1}
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "tool_calls"
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 12
    with pytest.raises(openai.APIError):
        list(
            client.chat.completions.create(
                model="claude-midstream", messages=[{"role": "user", "content": "x"}], stream=True
            )
        )


def test_sse_helpers_round_trip_one_event() -> None:
    event = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "é"},
    }
    raw = encode_anthropic_event(event)
    assert raw.startswith(b"event: content_block_delta\ndata: ") and raw.endswith(b"\n\n")
    assert event_data(raw) == event and parse_events(raw + b": comment\n\ndata: [DONE]\n\n") == [
        event
    ]
    assert event_data(b"event: ping\r\ndata: {}\r\n") == {"type": "ping"}
    assert event_data(b"data: {cut") is None
