"""Extended thinking's budget against the output limit the balance pays for.

Anthropic refuses (400) a `thinking.budget_tokens` that is not below `max_tokens`, but with
the interleaved-thinking beta and tools, where the budget spans the turn. The node lowers
`max_tokens` to what the balance covers: when that would fall to the budget or below, the
balance is short (a 402 naming what the request needs), before any upstream call; when the
client's own `max_tokens` (or the model's output limit) is already there, it is the client's
400, as Anthropic gives it, also before any upstream call. The mock Anthropic upstream
(`mnode`: 3 msat a prompt token, 15 an output token) applies Anthropic's rule.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import NodeHandle
from tests.support.dialect_payloads import CITY_WEATHER
from tests.support.messages_node import HI
from tests.support.money import call
from tests.support.servers import ThreadedServer

BUDGET = 2048
THINKING = {"type": "enabled", "budget_tokens": BUDGET}
SHORT = 20_000  # msat: the prompt's reservation and some 1 200 output tokens, below the budget
ENOUGH = 60_000  # some 3 900 output tokens: past the budget, short of the 4 000 asked


def thinking_body(**extra: Any) -> dict[str, Any]:
    body = {"model": "claude-mock", "max_tokens": 4000, "thinking": THINKING, "messages": HI}
    return body | extra


def sent_upstream(server: ThreadedServer) -> int:
    return len(server.mock.received)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_balance_short_of_the_thinking_budget_is_a_402_before_the_upstream(
    mnode: NodeHandle, claude_upstream: ThreadedServer, stream: bool
) -> None:
    key = mnode.new_key(SHORT)
    before = sent_upstream(claude_upstream)
    status, headers, answer = await call(
        mnode, "POST", "/v1/messages", key, json=thinking_body(stream=stream)
    )
    assert status == 402 and answer["error"]["type"] == "billing_error", answer
    need = int(headers["X-Required-Msat"])  # at least the budget and one token more
    assert need > SHORT and need > 15 * (BUDGET + 1)
    assert str(need) in answer["error"]["message"]
    assert sent_upstream(claude_upstream) == before
    assert mnode.balance(key) == SHORT
    mnode.assert_clean()


async def test_a_balance_past_the_budget_goes_upstream_with_max_tokens_lowered(
    mnode: NodeHandle, claude_upstream: ThreadedServer
) -> None:
    key = mnode.new_key(ENOUGH)
    status, _, answer = await call(mnode, "POST", "/v1/messages", key, json=thinking_body())
    assert status == 200 and answer["content"][0]["type"] == "thinking", answer
    sent = claude_upstream.mock.received[-1]["body"]
    assert BUDGET < sent["max_tokens"] < 4000
    mnode.assert_clean()


@pytest.mark.parametrize("max_tokens", [2048, 1500, 100_000])  # 100 000: past the model's 64 000
async def test_a_max_tokens_not_above_the_budget_is_the_clients_400(
    mnode: NodeHandle, claude_upstream: ThreadedServer, max_tokens: int
) -> None:
    key = mnode.new_key(1_000_000)
    before = sent_upstream(claude_upstream)
    budget = 70_000 if max_tokens > 64_000 else BUDGET
    thinking = {"type": "enabled", "budget_tokens": budget}
    body = thinking_body(max_tokens=max_tokens, thinking=thinking)
    status, _, answer = await call(mnode, "POST", "/v1/messages", key, json=body)
    assert status == 400 and answer["error"]["type"] == "invalid_request_error", answer
    assert "budget_tokens" in answer["error"]["message"]
    assert sent_upstream(claude_upstream) == before
    assert mnode.balance(key) == 1_000_000
    mnode.assert_clean()


async def test_interleaved_thinking_with_tools_may_budget_past_max_tokens(
    mnode: NodeHandle, claude_upstream: ThreadedServer
) -> None:
    """Claude Code's turns: max_tokens 32 000, budget 31 999, tools and the beta; a small
    balance lowers max_tokens below the budget, which Anthropic takes there."""
    key = mnode.new_key(ENOUGH)
    body = thinking_body(
        max_tokens=32_000,
        thinking={"type": "enabled", "budget_tokens": 31_999},
        tools=[CITY_WEATHER],
        tool_choice={"type": "auto"},
    )
    beta = {"anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14"}
    status, _, answer = await call(mnode, "POST", "/v1/messages", key, headers=beta, json=body)
    assert status == 200, answer
    assert claude_upstream.mock.received[-1]["body"]["max_tokens"] < 31_999
    mnode.assert_clean()


async def test_an_x_cashu_token_short_of_the_budget_is_asked_for_more_and_kept(
    mnode: NodeHandle, claude_upstream: ThreadedServer, mint: Any, ref_wallet: Any
) -> None:
    token = await ref_wallet.token(mint.url, SHORT // 1000)
    before = sent_upstream(claude_upstream)
    status, headers, answer = await call(
        mnode, "POST", "/v1/messages", x_cashu=token, json=thinking_body()
    )
    assert status == 402 and answer["error"]["type"] == "billing_error", answer
    assert headers["X-Cashu"].startswith("creq")  # NUT-24: what the whole request needs
    assert sent_upstream(claude_upstream) == before
    assert await ref_wallet.receive(token) == SHORT // 1000  # not redeemed by the node


async def test_a_chat_clients_reasoning_budget_stays_below_the_lowered_limit(
    mnode: NodeHandle, claude_upstream: ThreadedServer
) -> None:
    """A chat request carries no budget of its own: the translation derives it from the
    limit the balance left (node/dialects/chat_to_messages.py), so it goes below it."""
    key = mnode.new_key(ENOUGH)
    body = {"model": "claude-mock", "messages": HI, "max_tokens": 20_000,
            "reasoning_effort": "high"}  # fmt: skip
    status, _, answer = await call(mnode, "POST", "/v1/chat/completions", key, json=body)
    assert status == 200, answer
    sent = claude_upstream.mock.received[-1]["body"]
    assert sent["thinking"]["budget_tokens"] < sent["max_tokens"] < 20_000
    mnode.assert_clean()
