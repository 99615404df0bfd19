"""What a Messages request can make the upstream bill, bounded (docs/billing.md, "/v1/messages").

Cache writes bill above the input price: kept only on a model with a cache-write price, and
then only the 5-minute kind; images and documents are bounded by the model's context.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from tests.conftest import NodeHandle
from tests.support.anthropic_upstream import API_KEY
from tests.support.messages_node import CLAUDE, HI, claude_cost, sdk
from tests.support.money import call
from tests.support.servers import ThreadedServer

SYSTEM: Any = [
    {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
]
IMAGE: Any = [{"role": "user", "content": [
    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}},
    {"type": "text", "text": "what is it?"}]}]  # fmt: skip


def sent_body(server: ThreadedServer) -> dict[str, Any]:
    body: dict[str, Any] = server.mock.received[-1]["body"]
    return body


def test_cache_writes_only_where_priced_and_never_the_dearer_kind(
    mnode: NodeHandle, claude_upstream: ThreadedServer
) -> None:
    key = mnode.new_key(1_000_000)
    client = sdk(mnode, key)
    client.messages.create(model="claude-mock", max_tokens=20, messages=HI, system=SYSTEM)
    assert sent_body(claude_upstream)["system"][0]["cache_control"] == {"type": "ephemeral"}
    client.messages.create(model="claude-nocache", max_tokens=20, messages=HI, system=SYSTEM)
    assert "cache_control" not in sent_body(claude_upstream)["system"][0]
    mnode.assert_clean()


async def test_an_image_is_reserved_at_the_models_context(mnode: NodeHandle) -> None:
    # 200 000 context tokens at the cache-write price ($3.75/Mtok): 750 000 msat before output
    key = mnode.new_key(700_000)
    text = {"model": "claude-mock", "max_tokens": 20, "messages": HI}
    status, _, _ = await call(mnode, "POST", "/v1/messages", key, json=text)
    assert status == 200
    left = mnode.balance(key)
    image = {"model": "claude-mock", "max_tokens": 20, "messages": IMAGE}
    status, _, answer = await call(mnode, "POST", "/v1/messages", key, json=image)
    assert status == 402 and answer["error"]["type"] == "billing_error", answer
    assert mnode.balance(key) == left
    rich = mnode.new_key(1_000_000)
    status, _, answer = await call(mnode, "POST", "/v1/messages", rich, json=image)
    assert status == 200, answer
    mnode.assert_clean()


async def test_service_tier_never_a_dearer_one(
    mnode: NodeHandle, claude_upstream: ThreadedServer
) -> None:
    key = mnode.new_key(1_000_000)
    body = {"model": "claude-mock", "max_tokens": 20, "messages": HI, "service_tier": "auto"}
    status, _, _ = await call(mnode, "POST", "/v1/messages", key, json=body)
    assert status == 200 and sent_body(claude_upstream)["service_tier"] == "standard_only"
    status, _, answer = await call(
        mnode, "POST", "/v1/messages", key, json=body | {"service_tier": "priority"}
    )
    assert status == 400 and answer["error"]["type"] == "invalid_request_error"
    mnode.assert_clean()


async def test_a_long_context_beta_only_where_the_context_bounds_it(
    mnode: NodeHandle, claude_upstream: ThreadedServer
) -> None:
    """Anthropic's `context-1m-…` beta takes prompts past the 200 000 tokens claude-mock's
    context says (billed at a dearer rate past them), which the node would reserve and charge
    only up to that context: the beta is not passed on, the others are."""
    key = mnode.new_key(1_000_000)
    body = {"model": "claude-mock", "max_tokens": 20, "messages": HI}
    betas = "claude-code-20250219, context-1m-2025-08-07,interleaved-thinking-2025-05-14"
    status, _, _ = await call(
        mnode, "POST", "/v1/messages", key, json=body, headers={"anthropic-beta": betas}
    )
    assert status == 200
    sent = claude_upstream.mock.received[-1]["headers"]
    assert sent["anthropic-beta"] == "claude-code-20250219,interleaved-thinking-2025-05-14"
    mnode.assert_clean()


@pytest.mark.parametrize(
    ("field", "listed", "dearer"),
    [("inference_geo", "global", "us"), ("speed", "standard", "fast")],
)
async def test_never_a_dearer_geography_or_speed(
    mnode: NodeHandle, claude_upstream: ThreadedServer, field: str, listed: str, dearer: str
) -> None:
    """`inference_geo: "us"` bills 1.1x the listed price (Anthropic's data residency),
    `speed: "fast"` several times it (fast mode): refused before payment; the value billed
    at the listed price goes on."""
    key = mnode.new_key(1_000_000)
    body = {"model": "claude-mock", "max_tokens": 20, "messages": HI, field: listed}
    status, _, _ = await call(mnode, "POST", "/v1/messages", key, json=body)
    assert status == 200 and sent_body(claude_upstream)[field] == listed
    left = mnode.balance(key)
    status, _, answer = await call(mnode, "POST", "/v1/messages", key, json=body | {field: dearer})
    assert status == 400 and answer["error"]["type"] == "invalid_request_error", answer
    assert field in answer["error"]["message"] and mnode.balance(key) == left
    mnode.assert_clean()


def test_a_request_with_tools_is_reserved_past_the_prompt_anthropic_adds_for_them(
    mnode: NodeHandle,
) -> None:
    """Anthropic bills the system prompt it writes to explain tools as input (346 tokens on
    Claude 4 models, 530 on Claude 3 Opus: its tool-use pricing table): no byte of a small
    request stands for it. Billed at Claude 3 Opus's count plus the text's, it is charged
    in full: the bound (the bytes and a template's overhead) holds it."""
    key = mnode.new_key(1_000_000)
    tool = {"name": "t", "input_schema": {"type": "object"}}
    billed = {"input_tokens": 530 + 30, "output_tokens": 5}
    raw = sdk(mnode, key).messages.with_raw_response.create(
        model="claude-mock", max_tokens=5, messages=HI, tools=[tool],  # type: ignore[list-item]
        extra_body={"mock": billed},
    )  # fmt: skip
    cost = claude_cost(raw.parse().usage)
    assert raw.parse().usage.input_tokens == 560
    assert int(raw.headers["x-cost-msat"]) == cost
    assert mnode.balance(key) == 1_000_000 - cost
    mnode.assert_clean()


async def test_a_fallback_model_without_a_cache_write_price_gets_no_cache_marks(
    make_node: Callable[..., NodeHandle], claude_upstream: ThreadedServer
) -> None:
    """The models a request names share its content; the first (priced for cache writes)
    keeps the marks, a fallback without that price must get none, wherever they were."""
    cacheless = {k: v for k, v in CLAUDE.items() if not k.startswith("cache")}
    node = make_node(
        upstreams=[{"name": "claude", "kind": "anthropic", "list_models": False,
                    "base_url": f"{claude_upstream.url}/v1", "api_key": API_KEY}],
        models=[{"id": "claude-fail500", "upstream": "claude", **CLAUDE},
                {"id": "claude-nocache", "upstream": "claude", **cacheless}],
    )  # fmt: skip
    key = node.new_key(2_000_000)
    marked = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
            ],
        }
    ]
    body = {
        "model": "claude-fail500",
        "models": ["claude-nocache"],
        "max_tokens": 20,
        "system": SYSTEM,
        "messages": marked,
        "cache_control": {"type": "ephemeral"},
    }
    status, _, answer = await call(node, "POST", "/v1/messages", key, json=body)  # fmt: skip
    assert status == 200, answer
    sent = sent_body(claude_upstream)
    assert sent["model"] == "claude-nocache"
    assert "cache_control" not in orjson.dumps(sent).decode()
    node.assert_clean()
