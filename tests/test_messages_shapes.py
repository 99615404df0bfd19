"""A Messages request whose fields have the wrong JSON types gets a 400 in Anthropic's envelope
naming the field, on /v1/messages and on count_tokens, before any upstream call, and costs
nothing; shapes Anthropic documents (and block or tool types the node does not know) pass on.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import NodeHandle
from tests.support.messages_node import HI
from tests.support.money import call
from tests.support.servers import ThreadedServer

OK: dict[str, Any] = {"model": "claude-mock", "max_tokens": 16, "messages": HI}


def user(*blocks: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(blocks)}]


BAD_ANYWHERE: list[tuple[str, dict[str, Any]]] = [
    ("messages", {"messages": "hi"}),
    ("messages[0]", {"messages": [None]}),
    ("messages[0]", {"messages": [{"role": "system", "content": "x"}]}),
    ("messages[0]", {"messages": [{"role": "user", "content": 5}]}),
    ("messages[0].content[0]", {"messages": user({"text": "no type"})}),
    ("messages[0].content[0]", {"messages": user({"type": "text", "text": 5})}),
    ("messages[0].content[0].source", {"messages": user({"type": "image"})}),
    ("messages[0].content[0].source", {"messages": user(
        {"type": "image", "source": {"type": "url", "url": 5}})}),
    ("messages[0].content[0].source", {"messages": user(
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                        "data": 7}})}),
    ("messages[0].content[0]", {"messages": user(
        {"type": "tool_result", "tool_use_id": 5, "content": "x"})}),
    ("system", {"system": 5}),
    ("system[0]", {"system": [{"type": "text"}]}),
    ("system[0]", {"system": ["x"]}),
    ("tools", {"tools": {}}),
    ("tools[0]", {"tools": [{"input_schema": {}}]}),
    ("tools[0].input_schema", {"tools": [{"name": "t", "input_schema": "x"}]}),
    ("tool_choice", {"tool_choice": "any"}),
    ("tool_choice.name", {"tool_choice": {"type": "tool"}}),
    ("thinking", {"thinking": "on"}),
    ("thinking.budget_tokens", {"thinking": {"type": "enabled", "budget_tokens": "x"}}),
]  # fmt: skip
BAD_ON_MESSAGES: list[tuple[str, dict[str, Any]]] = [
    ("max_tokens", {"max_tokens": 1.5}),
    ("max_tokens", {"max_tokens": True}),
    ("max_tokens", {"max_tokens": "16"}),
    ("stream", {"stream": "yes"}),
    ("metadata", {"metadata": "x"}),
    ("temperature", {"temperature": "hot"}),
    ("top_p", {"top_p": True}),
    ("top_k", {"top_k": -5}),
    ("stop_sequences", {"stop_sequences": "x"}),
    ("stop_sequences", {"stop_sequences": [1]}),
    ("service_tier", {"service_tier": ["auto"]}),  # was a 500: a list is no set member
    ("service_tier", {"service_tier": {"tier": "auto"}}),
    ("inference_geo", {"inference_geo": ["us"]}),
    ("speed", {"speed": 5}),
]


@pytest.mark.parametrize(
    ("path", "field", "change"),
    [("/v1/messages", f, c) for f, c in BAD_ANYWHERE + BAD_ON_MESSAGES]
    + [("/v1/messages/count_tokens", f, c) for f, c in BAD_ANYWHERE],
)
async def test_a_wrong_type_is_a_400_naming_the_field(
    mnode: NodeHandle, claude_upstream: ThreadedServer, path: str, field: str, change: Any
) -> None:
    key = mnode.new_key(100_000)
    calls = len(claude_upstream.mock.received)
    status, _, answer = await call(mnode, "POST", path, key, json={**OK, **change})
    assert status == 400 and answer["type"] == "error", answer
    assert answer["error"]["type"] == "invalid_request_error"
    assert field in answer["error"]["message"], answer
    assert len(claude_upstream.mock.received) == calls  # refused before the upstream
    assert mnode.balance(key) == 100_000


async def test_an_odd_block_inside_a_tool_result_is_no_server_error(
    mnode: NodeHandle, claude_upstream: ThreadedServer
) -> None:
    """Blocks inside a tool result are not type-checked here: one whose type is not a string
    is the upstream's to refuse (it is not text, so the prompt is bounded by the context)."""
    key = mnode.new_key(1_000_000)
    for odd in ({"type": ["text"]}, {"type": {"a": 1}}, {"text": "no type"}):
        result = {"type": "tool_result", "tool_use_id": "t1", "content": [odd]}
        status, _, answer = await call(
            mnode, "POST", "/v1/messages", key, json={**OK, "messages": user(result)}
        )
        assert status < 500 and answer is not None, answer
    mnode.assert_clean()


async def test_documented_and_unknown_shapes_pass(
    mnode: NodeHandle, claude_upstream: ThreadedServer
) -> None:
    """The checks are of types only: new block types, adaptive thinking, null optionals, a
    tool_result's list content and a text document go on to the upstream."""
    key = mnode.new_key(10_000_000)
    body = {
        **OK,
        "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [
                {"type": "redacted_thinking", "data": "abc"},
                {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Oslo"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1",
                 "content": [{"type": "text", "text": "cold"}]},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                                "data": "notes"}},
                {"type": "some_future_block", "x": 1}]},
        ],
        "tools": [{"name": "weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "auto"},
        "thinking": {"type": "adaptive"},
        "temperature": None,
        "top_k": 0,
        "stop_sequences": [],
        "metadata": {"user_id": "u1"},
        "stream": False,
    }  # fmt: skip
    status, _, answer = await call(mnode, "POST", "/v1/messages", key, json=body)
    assert status == 200, answer
    counting = {k: body[k] for k in ("model", "system", "messages", "tools", "tool_choice")}
    status, _, answer = await call(mnode, "POST", "/v1/messages/count_tokens", key, json=counting)
    assert status == 200 and isinstance(answer["input_tokens"], int), answer


async def test_a_client_error_without_its_own_anthropic_type_is_an_invalid_request_error(
    mnode: NodeHandle,
) -> None:
    """Anthropic uses invalid_request_error for the 4xx it lists no type for (a 405 here);
    api_error is its 500."""
    key = mnode.new_key(100_000)
    for method in ("GET", "PUT", "DELETE"):
        status, _, answer = await call(mnode, method, "/v1/messages", key)
        assert status == 405 and answer["type"] == "error", answer
        assert answer["error"]["type"] == "invalid_request_error", answer
    assert mnode.balance(key) == 100_000
