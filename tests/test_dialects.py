"""Anthropic Messages requests translated for an OpenAI-compatible upstream (`messages_to_chat`).

Realistic payloads, Claude Code's request shapes among them, and clear refusals of what chat
cannot carry. The other translations: test_dialects_answers.py (answers and a tool-use round
trip), test_dialects_chat_clients.py (the reverse direction), test_dialects_streams.py (streams),
test_dialects_usage.py (usage).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from node.dialects.errors import InvalidRequest
from node.dialects.messages_to_chat import ChatOptions, chat_request
from tests.support.dialect_payloads import PNG, WEATHER, WEATHER_FUNCTION, messages_body

FIXTURES = Path(__file__).parent / "fixtures" / "claude_code"


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


# --- Messages request -> chat request ------------------------------------------------------------


def image(kind: str, **fields: str) -> dict[str, Any]:
    return {"type": "image", "source": {"type": kind, **fields}}


def document(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": "document", "source": {"type": kind, **fields}}


PDF_PART = {"filename": "document.pdf", "file_data": "data:application/pdf;base64,JVBE"}


@pytest.mark.parametrize(
    ("block", "parts"),
    [
        (image("base64", media_type="image/png", data=PNG),
         [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]),
        (image("url", url="https://example.com/a.jpg"),
         [{"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}}]),
        (document("text", media_type="text/plain", data="n1") | {"title": "notes"},
         [{"type": "text", "text": "notes\n\nn1"}]),
        (document("base64", media_type="application/pdf", data="JVBE"),
         [{"type": "file", "file": PDF_PART}]),
        (document("content", content=[{"type": "text", "text": "c1"}, image("url", url="u")]),
         [{"type": "text", "text": "c1"}, {"type": "image_url", "image_url": {"url": "u"}}]),
        (document("content", content="plain"), [{"type": "text", "text": "plain"}]),
    ],
)  # fmt: skip
def test_content_blocks_become_chat_parts(block: dict[str, Any], parts: list[Any]) -> None:
    shot = image("url", url="https://example.com/0.png") | {"cache_control": {"type": "ephemeral"}}
    chat = chat_request(messages_body(messages=[{"role": "user", "content": [shot, block]}]))
    first = {"type": "image_url", "image_url": {"url": "https://example.com/0.png"}}
    assert chat["messages"] == [{"role": "user", "content": [first, *parts]}]


def test_text_blocks_alone_travel_as_a_string() -> None:
    content = [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
    chat = chat_request(messages_body(messages=[{"role": "user", "content": content}]))
    assert chat["messages"] == [{"role": "user", "content": "one\ntwo"}]


def test_the_top_level_fields_become_chat_fields() -> None:
    body = messages_body(
        system=[
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=1; cch=00000;"},
            {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Use metric units."},
        ],
        tools=[WEATHER],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        stop_sequences=["END"],
        temperature=0.5,
        top_p=0.9,
        top_k=40,
        metadata={"user_id": "user-7"},
        thinking={"type": "enabled", "budget_tokens": 8000},
        stream=True,
    )
    chat = chat_request(body)
    assert chat["messages"][0] == {"role": "system", "content": "Be brief.\n\nUse metric units."}
    assert chat["tools"] == [WEATHER_FUNCTION]
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False
    assert chat["max_tokens"] == 100 and chat["stop"] == ["END"] and chat["user"] == "user-7"
    assert (chat["temperature"], chat["top_p"], chat["top_k"]) == (0.5, 0.9, 40)
    assert chat["reasoning_effort"] == "medium"
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert "cache_control" not in json.dumps(chat)


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        (
            {"type": "tool", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
    ],
)
def test_tool_choice_maps_to_chat(choice: dict[str, Any], expected: Any) -> None:
    chat = chat_request(messages_body(tools=[WEATHER], tool_choice=choice))
    assert chat["tool_choice"] == expected
    assert "parallel_tool_calls" not in chat


@pytest.mark.parametrize(
    ("thinking", "config", "effort"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, None, "low"),
        ({"type": "enabled", "budget_tokens": 31999}, None, "high"),
        ({"type": "adaptive"}, None, None),
        ({"type": "disabled"}, None, None),
        (None, {"effort": "max"}, "high"),
        ({"type": "enabled", "budget_tokens": 1024}, {"effort": "medium"}, "medium"),
    ],
)
def test_thinking_becomes_reasoning_effort(thinking: Any, config: Any, effort: Any) -> None:
    body = messages_body(thinking=thinking, output_config=config)
    assert chat_request(body).get("reasoning_effort") == effort


def test_options_drop_top_k_and_reasoning_and_name_max_completion_tokens() -> None:
    body = messages_body(top_k=5, thinking={"type": "enabled", "budget_tokens": 2000})
    options = ChatOptions(
        top_k=False, reasoning_effort=False, max_tokens_field="max_completion_tokens"
    )
    chat = chat_request(body, options)
    assert "top_k" not in chat and "reasoning_effort" not in chat and "max_tokens" not in chat
    assert chat["max_completion_tokens"] == 100


def test_structured_output_becomes_a_json_schema_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    body = messages_body(output_config={"format": {"type": "json_schema", "schema": schema}})
    assert chat_request(body)["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    }


def test_a_tool_turn_puts_tool_messages_first_and_drops_thinking() -> None:
    body = fixture("tool_result_turn_stream.json")["body"]
    body["messages"][2]["content"] += [
        {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True, "content": "boom"},
        {
            "type": "tool_result",
            "tool_use_id": "toolu_3",
            "content": [
                {"type": "text", "text": "shot"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                },
            ],
        },
        {"type": "text", "text": "go on"},
    ]
    chat = chat_request(body)
    roles = [m["role"] for m in chat["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "tool", "tool", "user"]
    assistant = chat["messages"][2]
    assert assistant["content"] == "I'll read the file."  # the thinking block is dropped
    assert assistant["tool_calls"] == [
        {
            "id": "toolu_01A09q90qw90lq917835lq9",
            "type": "function",
            "function": {"name": "Read", "arguments": '{"file_path":"/home/user/project/main.py"}'},
        }
    ]
    assert chat["messages"][3] == {
        "role": "tool",
        "tool_call_id": "toolu_01A09q90qw90lq917835lq9",
        "content": '     1\tprint("hello, world")\n',
    }
    assert chat["messages"][4]["content"] == "Error: boom"
    assert chat["messages"][5]["content"] == "shot"
    assert chat["messages"][6]["content"] == [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "text", "text": "go on"},
    ]


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_claude_code_requests_translate_to_chat(name: str) -> None:
    body = fixture(name)["body"] | {"max_tokens": 1000}  # count_tokens bodies have none
    chat = chat_request(body)
    text = json.dumps(chat)
    assert "x-anthropic-billing-header" not in text and "cache_control" not in text
    system = [b["text"] for b in body["system"] if not b["text"].startswith("x-anthropic")]
    assert chat["messages"][0] == {"role": "system", "content": "\n\n".join(system)}
    assert chat.get("stream", False) is body.get("stream", False)
    if "metadata" in body:
        assert chat["user"] == body["metadata"]["user_id"]


def user_says(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": list(blocks)}]}


def block(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, **fields}


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": "100"}, "max_tokens"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "x"}]}, "role"),
        ({"model": ""}, "model"),
        ({"system": 5}, "system"),
        ({"temperature": "hot"}, "temperature"),
        ({"stop_sequences": "END"}, "stop_sequences"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "web_search"),
        ({"tools": [{"name": "x"}]}, "input_schema"),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice"),
        ({"mcp_servers": [{"type": "url", "url": "https://mcp.example"}]}, "mcp_servers"),
        (user_says(block("document", source=block("url", url="https://x/a.pdf"))), "URL"),
        (user_says(block("image", source=block("file", file_id="f_1"))), "base64"),
        (user_says(block("hologram")), "'hologram'"),
        (user_says(block("tool_use", id="t", name="n", input={})), "'tool_use'"),
        (user_says(block("tool_result", content="no id")), "tool_use_id"),
        (
            {"messages": [{"role": "assistant", "content": [block("server_tool_use", id="s")]}]},
            "'server_tool_use'",
        ),
    ],
)
def test_what_chat_cannot_carry_is_refused_clearly(change: dict[str, Any], says: str) -> None:
    body = {k: v for k, v in (messages_body() | change).items() if v is not None}
    with pytest.raises(InvalidRequest) as refused:
        chat_request(body)
    assert says in refused.value.message
    assert refused.value.status == 400
    assert refused.value.anthropic_envelope() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": refused.value.message},
    }


def test_a_body_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        chat_request(["not", "an", "object"])
