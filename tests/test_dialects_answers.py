"""Answers from an OpenAI-compatible upstream for an Anthropic Messages client: a chat completion
becomes a Messages answer (`node.dialects.messages_to_chat.messages_answer`), and a full tool-use
round trip goes out and back through both translations.
"""

from __future__ import annotations

from typing import Any

import pytest

from node.dialects.errors import UnreadableAnswer
from node.dialects.messages_to_chat import chat_request, messages_answer
from node.dialects.usage import read_chat_usage
from tests.support.dialect_payloads import WEATHER, WEATHER_FUNCTION, messages_body

# --- chat completion -> Messages answer --------------------------------------------------------


def chat_completion(message: dict[str, Any], finish: str = "stop", **choice: Any) -> dict[str, Any]:
    usage = {
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "total_tokens": 150,
        "prompt_tokens_details": {"cached_tokens": 100},
    }
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1,
        "model": "up-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish} | choice],
        "usage": usage,
    }


def test_a_chat_completion_becomes_a_messages_answer() -> None:
    message = {
        "role": "assistant",
        "content": "Checking.",
        "reasoning_content": "Need weather.",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris", "days": 2}'},
            }
        ],
    }
    answer = messages_answer(chat_completion(message, "tool_calls"), model="claude-x")
    assert answer == {
        "id": "msg_abc123",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "Need weather.", "signature": ""},
            {"type": "text", "text": "Checking."},
            {
                "type": "tool_use",
                "id": "call_1",
                "name": "get_weather",
                "input": {"city": "Paris", "days": 2},
            },
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 20,
            "output_tokens": 30,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 100,
        },
    }


@pytest.mark.parametrize(
    ("finish", "choice", "reason", "sequence"),
    [
        ("stop", {}, "end_turn", None),
        ("length", {}, "max_tokens", None),
        ("tool_calls", {}, "tool_use", None),
        ("content_filter", {}, "refusal", None),
        ("stop", {"stop_reason": "END"}, "stop_sequence", "END"),  # vLLM names the stop met
        ("stop", {"stop_reason": 128001}, "end_turn", None),  # …or the stop token's id
        (None, {}, "end_turn", None),
    ],
)
def test_finish_reasons_become_stop_reasons(
    finish: Any, choice: dict[str, Any], reason: str, sequence: str | None
) -> None:
    completion = chat_completion({"role": "assistant", "content": "hi"}, finish, **choice)
    answer = messages_answer(completion, stop_sequences=["END"])
    assert (answer["stop_reason"], answer["stop_sequence"]) == (reason, sequence)


def test_a_chat_completion_without_usage_answers_zero_counts_and_reads_as_none() -> None:
    completion = chat_completion({"role": "assistant", "content": "hi"})
    del completion["usage"]
    assert messages_answer(completion)["usage"]["output_tokens"] == 0
    assert read_chat_usage(completion.get("usage")) is None


@pytest.mark.parametrize(
    "completion",
    [
        {"choices": []},
        {"choices": [{"index": 0, "finish_reason": "stop"}]},
        "not json",
        chat_completion(
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "c",
                        "type": "function",
                        "function": {"name": "f", "arguments": "{broken"},
                    }
                ],
            }
        ),
        chat_completion(
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "c",
                        "type": "function",
                        "function": {"name": "f", "arguments": "[1, 2]"},
                    }
                ],
            }
        ),
        chat_completion({"role": "assistant", "tool_calls": [{"id": "c", "type": "function"}]}),
    ],
)
def test_an_unreadable_chat_completion_raises_unreadable_answer(completion: Any) -> None:
    with pytest.raises(UnreadableAnswer) as unreadable:
        messages_answer(completion)
    assert unreadable.value.status == 502
    assert unreadable.value.anthropic_envelope()["error"]["type"] == "api_error"


# --- a tool-use round trip: an Anthropic client, an OpenAI-compatible upstream --------------------


def test_a_tool_use_round_trip_through_a_chat_upstream() -> None:
    question = {"role": "user", "content": "Weather in Paris?"}
    first = chat_request(messages_body(messages=[question], tools=[WEATHER]))
    assert first["tools"] == [WEATHER_FUNCTION]
    call = {
        "id": "call_9",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    upstream = chat_completion(
        {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
    )
    answer = messages_answer(upstream, model="m")
    assert answer["stop_reason"] == "tool_use"
    tool_use = answer["content"][0]
    assert tool_use == {
        "type": "tool_use",
        "id": "call_9",
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    # The client runs the tool and sends the whole conversation back, as the SDK does.
    result = {"type": "tool_result", "tool_use_id": tool_use["id"], "content": "18 C, sunny"}
    turns = [
        question,
        {"role": "assistant", "content": answer["content"]},
        {"role": "user", "content": [result]},
    ]
    second = chat_request(messages_body(messages=turns, tools=[WEATHER]))
    assert second["messages"][1] == {"role": "assistant", "content": None, "tool_calls": [call]}
    assert second["messages"][2] == {
        "role": "tool",
        "tool_call_id": "call_9",
        "content": "18 C, sunny",
    }
    final = messages_answer(chat_completion({"role": "assistant", "content": "Sunny, 18 C."}))
    assert final["content"] == [{"type": "text", "text": "Sunny, 18 C."}]
    assert final["stop_reason"] == "end_turn"
