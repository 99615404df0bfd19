"""A stream the client leaves: the node reads the rest of the upstream's stream for its usage.

Whatever the dialects of the two ends, the charge is the same (docs/billing.md, "After the
reply"): a read that ends with the upstream's final usage is charged that usage; one that
cannot end (the upstream's connection breaks, or its time limit passes) is charged the whole
reservation, since the upstream bills the whole answer, which the node never saw. An Anthropic
stream's partial counts (message_start's prompt, the output so far) are not a final usage.

The models pause after their first delta (`*slow*`), when the client goes away; `*-cut` ones
then send a few more deltas and break before their usage (message_delta, the usage chunk).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from node.money.ledger import hash_key
from tests.conftest import NodeHandle
from tests.support.anthropic_upstream import API_KEY
from tests.support.messages_node import CLAUDE, HI, claude_cost
from tests.support.mock_upstream import usage_for
from tests.support.servers import ThreadedServer

BALANCE = 1_000_000
OPENAI_PRICE = {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0}  # msat a token: 1, 2
PAIRS = [  # (the client's path, the upstream's kind)
    ("/v1/chat/completions", "openai"),
    ("/v1/messages", "anthropic"),
    ("/v1/chat/completions", "anthropic"),  # translated to Messages and back
    ("/v1/messages", "openai"),  # translated to chat and back
]


@pytest.fixture
def dnode(
    make_node: Callable[..., NodeHandle],
    upstream: ThreadedServer,
    claude_upstream: ThreadedServer,
) -> NodeHandle:
    models = [{"id": f"test-{m}", "upstream": "mock", **OPENAI_PRICE} for m in ("slow", "slow-cut")]
    models += [{"id": f"claude-{m}", "upstream": "claude", **CLAUDE} for m in ("slow", "slow-cut")]
    upstreams = [
        {"name": "mock", "base_url": f"{upstream.url}/v1", "api_key": "sk-upstream-secret"},
        {"name": "claude", "kind": "anthropic", "base_url": f"{claude_upstream.url}/v1",
         "api_key": API_KEY, "list_models": False},
    ]  # fmt: skip
    return make_node(upstreams=upstreams, models=models)


def body_for(path: str, kind: str, cut: bool) -> dict[str, Any]:
    """A stream of 10 output tokens that pauses 1 s after the first (2 s when translated to
    chat: the translation drops `mock`); an Anthropic upstream reports 40 prompt tokens."""
    model = ("claude-slow" if kind == "anthropic" else "test-slow") + ("-cut" if cut else "")
    body: dict[str, Any] = {"model": model, "max_tokens": 500, "messages": HI, "stream": True}
    if path.endswith("messages"):
        body["mock"] = {"input_tokens": 40, "pause_s": 1}
    else:
        body["mock"] = {"pause_s": 1}
        body["user"] = "mock:input_tokens=40,pause_s=1"  # to metadata.user_id, for Anthropic
    return body


async def leave_after_first_delta(node: NodeHandle, key: str, path: str, body: Any) -> int:
    """Stream `body` and hang up at the first output; the reservation it held, once settled."""
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession() as http:
        resp = await http.post(node.url + path, headers=headers, json=body)
        assert resp.status == 200
        seen = b""
        while b"tok" not in seen:
            seen += await resp.content.readany()
        account = node.ledger.find(hash_key(key))
        assert account is not None
        resp.close()  # the upstream pauses; the node finds the client gone at its next write
    for _ in range(200):
        if node.ledger.open_reservations() == 0:
            break
        await asyncio.sleep(0.05)
    node.assert_clean()
    return account.reserved_msat


@pytest.mark.parametrize(("path", "kind"), PAIRS)
async def test_a_left_stream_whose_rest_breaks_is_charged_the_reservation(
    dnode: NodeHandle, path: str, kind: str
) -> None:
    key = dnode.new_key(BALANCE)
    reserved = await leave_after_first_delta(dnode, key, path, body_for(path, kind, cut=True))
    assert BALANCE - dnode.balance(key) == reserved


@pytest.mark.parametrize(("path", "kind"), PAIRS)
async def test_a_left_stream_read_to_its_end_is_charged_its_final_usage(
    dnode: NodeHandle,
    upstream: ThreadedServer,
    path: str,
    kind: str,
) -> None:
    key = dnode.new_key(BALANCE)
    reserved = await leave_after_first_delta(dnode, key, path, body_for(path, kind, cut=False))
    if kind == "anthropic":
        final = claude_cost({"input_tokens": 40, "output_tokens": 10})
    else:
        prompt, completion = usage_for(upstream.mock.received[-1]["body"])
        final = prompt + 2 * completion
    assert BALANCE - dnode.balance(key) == final < reserved
