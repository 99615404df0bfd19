"""Messages request shapes that tried to make the upstream bill past the reservation, or the
node answer other than a clear 4xx (docs/billing.md, "/v1/messages"): each now bounded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import NodeHandle
from tests.support.anthropic_upstream import API_KEY
from tests.support.messages_node import CLAUDE
from tests.support.money import call
from tests.support.servers import ThreadedServer

URL_IMAGE: Any = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}


def asking(model: str, *blocks: Any) -> dict[str, Any]:
    content = [*blocks, {"type": "text", "text": "?"}]
    return {"model": model, "max_tokens": 20, "messages": [{"role": "user", "content": content}]}


@pytest.mark.parametrize(
    ("model", "short_msat"),
    [("claude-mock", 700_000), ("test-model", 100_000)],  # below the context's cost
)
@pytest.mark.parametrize(
    "blocks",
    [
        [URL_IMAGE | {"role": "user"}],  # a stray key on the block
        [{"type": "tool_result", "tool_use_id": "t1", "content": [URL_IMAGE | {"role": "user"}]}],
    ],
    ids=["block", "in-a-tool-result"],
)
async def test_an_image_with_a_role_key_is_still_reserved_at_the_context(
    mnode: NodeHandle, claude_upstream: ThreadedServer, upstream: ThreadedServer,
    model: str, short_msat: int, blocks: list[Any],
) -> None:  # fmt: skip
    """A `role` key made an image block look like a message, whose type is not a block's, so
    its tokens (not in the body's bytes) were bounded by the bytes: the upstream (Anthropic's,
    or an OpenAI-compatible one the block is translated for, which drops the key) billed the
    image past the reservation."""
    key = mnode.new_key(short_msat)
    calls = len(claude_upstream.mock.received), len(upstream.mock.received)
    status, _, answer = await call(mnode, "POST", "/v1/messages", key, json=asking(model, *blocks))
    assert status == 402 and answer["error"]["type"] == "billing_error", answer
    assert (len(claude_upstream.mock.received), len(upstream.mock.received)) == calls
    assert mnode.balance(key) == short_msat
    mnode.assert_clean()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/messages", {"max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),  # translated
    ],
)
async def test_a_request_without_service_tier_goes_to_anthropic_as_standard_only(
    mnode: NodeHandle, claude_upstream: ThreadedServer, path: str, body: dict[str, Any]
) -> None:
    """Anthropic reads a missing `service_tier` as "auto" ("uses Priority Tier capacity if
    available"), which the node already rewrites to "standard_only" when a client names it
    (docs/billing.md): a request naming none, or a chat request translated for an Anthropic
    upstream (the translation carries no tier), went upstream as "auto" all the same."""
    key = mnode.new_key(1_000_000)
    status, _, answer = await call(mnode, "POST", path, key, json={"model": "claude-mock", **body})
    assert status == 200, answer
    assert claude_upstream.mock.received[-1]["body"]["service_tier"] == "standard_only"
    mnode.assert_clean()


HTTP_TOOL: Any = {"name": "fetch", "input_schema": {"type": "object", "properties": {
    "url": {"type": "string"},
    "cache_control": {"type": "object", "properties": {"ttl": {"type": "integer"}}}}}}  # fmt: skip


@pytest.mark.parametrize("model", ["claude-mock", "claude-nocache"])
async def test_a_property_named_cache_control_in_the_clients_json_is_left_alone(
    mnode: NodeHandle, claude_upstream: ThreadedServer, model: str
) -> None:
    """Prompt-cache writes are limited by taking `cache_control` out (or its ttl) wherever it
    is: also out of a tool's input_schema, a tool call's input and an output schema, where it
    is the client's own data (a property an HTTP tool takes), not a cache breakpoint."""
    key = mnode.new_key(1_000_000)
    call_input = {"url": "https://example.com", "cache_control": {"ttl": 60}}
    body = {
        "model": model,
        "max_tokens": 20,
        "tools": [HTTP_TOOL | {"cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "messages": [
            {"role": "user", "content": "fetch it"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "t1", "name": "fetch", "input": call_input}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                          "content": "ok"}]},
        ],
        "output_config": {"format": {"type": "json_schema", "schema": HTTP_TOOL["input_schema"]}},
    }  # fmt: skip
    status, _, answer = await call(mnode, "POST", "/v1/messages", key, json=body)
    assert status == 200, answer
    sent = claude_upstream.mock.received[-1]["body"]
    assert sent["tools"][0]["input_schema"] == HTTP_TOOL["input_schema"]
    assert sent["messages"][1]["content"][0]["input"] == call_input
    assert sent["output_config"]["format"]["schema"] == HTTP_TOOL["input_schema"]
    # the tool's own breakpoint: kept as the 5-minute kind where priced, else taken out
    priced = model == "claude-mock"
    assert sent["tools"][0].get("cache_control") == ({"type": "ephemeral"} if priced else None)
    mnode.assert_clean()


@pytest.mark.parametrize(
    ("edits", "refused"),
    [
        ([{"type": "compact_20260112"}], True),
        ([{"type": "clear_tool_uses_20250919"}, {"type": "compact_20260112",
                                                  "trigger": {"type": "input_tokens",
                                                              "value": 50_000}}], True),
        ([{"type": "some_future_edit"}], True),
        ([{"type": "clear_tool_uses_20250919"}, {"type": "clear_thinking_20251015"}], False),
    ],
)  # fmt: skip
async def test_server_side_compaction_is_refused_before_payment(
    mnode: NodeHandle, claude_upstream: ThreadedServer, edits: list[Any], refused: bool
) -> None:
    """Anthropic's compaction (`context_management.edits` of type compact_20260112, beta
    compact-2026-01-12) runs a second sampling pass in the request, over the whole prompt,
    that writes a summary: billed on top, and reported in `usage.iterations`, not in the
    top-level counts the node charges. The upstream billed up to twice the prompt's bound
    and the summary past max_tokens; the node charged the final pass alone. Edits that only
    clear earlier tool uses or thinking go on."""
    key = mnode.new_key(1_000_000)
    calls = len(claude_upstream.mock.received)
    body = {"model": "claude-mock", "max_tokens": 20,
            "messages": [{"role": "user", "content": "hi"}],
            "context_management": {"edits": edits}}  # fmt: skip
    status, _, answer = await call(
        mnode, "POST", "/v1/messages", key, json=body,
        headers={"anthropic-beta": "compact-2026-01-12,context-management-2025-06-27"},
    )  # fmt: skip
    if refused:
        assert status == 400 and answer["error"]["type"] == "invalid_request_error", answer
        assert "context_management" in answer["error"]["message"]
        assert len(claude_upstream.mock.received) == calls
        assert mnode.balance(key) == 1_000_000
    else:
        assert status == 200, answer
        assert claude_upstream.mock.received[-1]["body"]["context_management"] == {"edits": edits}
    mnode.assert_clean()


async def test_the_long_context_beta_only_where_the_price_knows_the_long_context_rate(
    make_node: Callable[..., NodeHandle], claude_upstream: ThreadedServer
) -> None:
    """Anthropic bills a prompt past 200 000 tokens under `context-1m-…` at its long-context
    rate (Sonnet 4/4.5: $6/$22.50 for $3/$15): a model configured with a 1M context and one
    flat price (what [[models]] can say) took the beta, and such prompts were reserved and
    charged at half the input price Anthropic billed. The beta goes on only where the price
    has a tier at 200 000 tokens (genai-prices' for claude-sonnet-4-5)."""
    upstreams = [{"name": "claude", "kind": "anthropic", "base_url": f"{claude_upstream.url}/v1",
                  "api_key": API_KEY, "list_models": False}]  # fmt: skip
    models = [
        {"id": "claude-long-flat", "upstream": "claude", **CLAUDE, "context_length": 1_000_000},
        {"id": "claude-sonnet-4-5", "upstream": "claude", "context_length": 1_000_000},
    ]
    node = make_node(upstreams=upstreams, models=models)
    key = node.new_key(100_000_000)
    beta = {"anthropic-beta": "context-1m-2025-08-07,interleaved-thinking-2025-05-14"}
    for model, passed in (("claude-long-flat", False), ("claude-sonnet-4-5", True)):
        body = {"model": model, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
        status, _, answer = await call(node, "POST", "/v1/messages", key, json=body, headers=beta)
        assert status == 200, answer
        sent = claude_upstream.mock.received[-1]["headers"]["anthropic-beta"]
        assert ("context-1m-2025-08-07" in sent) is passed, (model, sent)
    node.assert_clean()
