"""OpenAI chat clients on a model an Anthropic upstream serves: `node.dialects.chat_to_messages`.

Requests and answers with realistic payloads, and a full tool-use round trip through the mock
Anthropic server with the official openai SDK. Streams are in test_dialects_streams.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from node.dialects.chat_to_messages import chat_answer, messages_request
from node.dialects.errors import InvalidRequest, UnreadableAnswer
from tests.support.anthropic_upstream import MockAnthropic
from tests.support.dialect_payloads import CITY_WEATHER_FUNCTION, PNG
from tests.support.servers import ThreadedServer, serve_mock
from tests.support.translating_transport import openai_over_messages


@pytest.fixture(scope="module")
def anthropic_mock() -> Iterator[ThreadedServer]:
    yield from serve_mock(MockAnthropic())


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "claude-mock", "messages": [{"role": "user", "content": "hi"}]} | extra


def test_a_conversation_becomes_alternating_turns() -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    pdf = {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"}
    body = chat_body(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Metric units."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "Look:"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
                {"type": "file", "file": pdf},
            ]},
            {"role": "assistant", "content": "Checking.", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
            {"role": "user", "content": "Thanks"},
        ]
    )  # fmt: skip
    out = messages_request(body, default_max_tokens=4096)
    assert out["system"] == "Be brief.\n\nMetric units."
    assert [t["role"] for t in out["messages"]] == ["user", "assistant", "user"]
    pdf_source = {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "Look:"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
        {"type": "document", "title": "a.pdf", "source": pdf_source},
    ]
    assert out["messages"][1]["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
    ]
    assert out["messages"][2]["content"] == [  # the tool result first, then the user's text
        {"type": "tool_result", "tool_use_id": "call_1", "content": "18 C"},
        {"type": "text", "text": "Thanks"},
    ]


def test_the_top_level_fields_become_messages_fields() -> None:
    body = chat_body(
        max_completion_tokens=300,
        max_tokens=999,
        stop="END",
        temperature=1.6,
        top_p=0.9,
        tools=[CITY_WEATHER_FUNCTION],
        tool_choice="required",
        parallel_tool_calls=False,
        user="user-7",
        stream=True,
        stream_options={"include_usage": True},
        seed=3,
    )
    out = messages_request(body, default_max_tokens=4096)
    assert out["max_tokens"] == 300 and out["stop_sequences"] == ["END"]
    assert out["temperature"] == 1.0 and out["top_p"] == 0.9
    assert out["metadata"] == {"user_id": "user-7"} and out["stream"] is True
    schema = CITY_WEATHER_FUNCTION["function"]["parameters"]
    description = "The weather in a city"
    tool = {"name": "get_weather", "description": description, "input_schema": schema}
    assert out["tools"] == [tool]
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert "seed" not in out and "stream_options" not in out


def test_max_tokens_defaults_to_the_callers_value() -> None:
    assert messages_request(chat_body(), default_max_tokens=4096)["max_tokens"] == 4096
    assert messages_request(chat_body(max_tokens=7), default_max_tokens=4096)["max_tokens"] == 7


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "tool", "name": "get_weather"},
        ),
    ],
)
def test_tool_choice_maps_to_messages(choice: Any, expected: dict[str, Any]) -> None:
    body = chat_body(tools=[CITY_WEATHER_FUNCTION], tool_choice=choice)
    assert messages_request(body, default_max_tokens=100)["tool_choice"] == expected


def test_reasoning_effort_becomes_thinking_and_drops_sampling() -> None:
    body = chat_body(reasoning_effort="high", max_tokens=8000, temperature=0.2, top_k=5)
    out = messages_request(body, default_max_tokens=100)
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 7999}
    assert "temperature" not in out and "top_k" not in out
    low = messages_request(chat_body(reasoning_effort="low", max_tokens=500), default_max_tokens=1)
    assert "thinking" not in low  # no room for Anthropic's minimum budget of 1024


def test_a_json_schema_response_format_becomes_output_config() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    out = messages_request(chat_body(response_format=fmt), default_max_tokens=100)
    assert out["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"n": 2}, "n:"),
        ({"logprobs": True}, "logprobs"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"modalities": ["text", "audio"]}, "audio"),
        ({"response_format": {"type": "json_object"}}, "json_object"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "function", "content": "x"}]}, "'function'"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}
                        ],
                    }
                ]
            },
            "'input_audio'",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}
                ]
            },
            "file ids",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "ftp://x/a.png"}}],
                    }
                ]
            },
            "image_url",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{oops"},
                            }
                        ],
                    }
                ]
            },
            "JSON object",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "tool_call_id"),
        ({"tools": [{"type": "web_search"}]}, "function tools"),
        ({"tool_choice": {"type": "function"}}, "tool_choice"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop": 5}, "stop"),
    ],
)
def test_what_messages_cannot_carry_is_refused_clearly(change: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        messages_request(chat_body() | change, default_max_tokens=100)
    assert says in refused.value.message and refused.value.status == 400
    envelope = refused.value.openai_envelope()["error"]
    assert (
        envelope["type"] == "invalid_request_error" and envelope["message"] == refused.value.message
    )


def test_a_messages_answer_becomes_a_chat_completion() -> None:
    answer = {
        "id": "msg_01XYZ",
        "type": "message",
        "role": "assistant",
        "model": "claude-up",
        "content": [
            {"type": "thinking", "thinking": "Need weather.", "signature": "sig"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "Checking."},
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 20,
            "cache_creation_input_tokens": 300,
            "cache_read_input_tokens": 4000,
        },
    }
    completion = chat_answer(answer, model="claude-mock", created=7)
    assert completion["id"] == "chatcmpl-01XYZ" and completion["created"] == 7
    assert completion["model"] == "claude-mock" and completion["object"] == "chat.completion"
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": "Checking.",
        "reasoning_content": "Need weather.",
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }
    assert completion["usage"]["prompt_tokens"] == 4310
    assert completion["usage"]["prompt_tokens_details"] == {"cached_tokens": 4000}
    assert completion["usage"]["cache_creation_input_tokens"] == 300


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
        (None, "stop"),
    ],
)
def test_stop_reasons_become_finish_reasons(stop_reason: Any, finish: str) -> None:
    answer = {"id": "msg_1", "content": [{"type": "text", "text": "x"}], "stop_reason": stop_reason}
    assert chat_answer(answer)["choices"][0]["finish_reason"] == finish


def test_an_answer_without_usage_has_no_usage_and_odd_answers_are_unreadable() -> None:
    assert "usage" not in chat_answer({"id": "msg_1", "content": [], "usage": {"input_tokens": 1}})
    for odd in ({"content": "text"}, [1], {"content": [{"type": "tool_use", "input": {}}]}):
        with pytest.raises(UnreadableAnswer):
            chat_answer(odd)


def test_a_tool_use_round_trip_with_the_openai_sdk_through_the_mock(
    anthropic_mock: ThreadedServer,
) -> None:
    client = openai_over_messages(anthropic_mock.url)
    user = "mock:cache_read_input_tokens=40,cache_creation_input_tokens=8,input_tokens=5"
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(
        model="claude-mock",
        messages=messages,
        tools=[CITY_WEATHER_FUNCTION],
        user=user,
    )
    calls = first.choices[0].message.tool_calls
    assert calls is not None
    call = calls[0]
    assert first.choices[0].finish_reason == "tool_calls" and call.type == "function"
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"city": "mock value"}'
    assert first.usage is not None and first.usage.prompt_tokens == 53
    assert first.usage.prompt_tokens_details is not None
    assert first.usage.prompt_tokens_details.cached_tokens == 40
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18 C, sunny"},
    ]
    second = client.chat.completions.create(
        model="claude-mock",
        messages=messages,
        tools=[CITY_WEATHER_FUNCTION],
    )
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "tok " * 10
    sent = anthropic_mock.mock.received[-1]["body"]
    assert sent["messages"][1]["content"][-1] == {
        "type": "tool_use",
        "id": call.id,
        "name": "get_weather",
        "input": {"city": "mock value"},
    }
    assert sent["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": call.id, "content": "18 C, sunny"}
    ]
