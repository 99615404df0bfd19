"""Upstream faults: 5xx, a hang, a stream cut mid-way, usage missing or absurd. Each ends with
a clear error or an answer, a charge no larger than what was reserved, and a clean audit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from tests.conftest import NodeHandle

HELLO: dict[str, Any] = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}]}
BALANCE = 1_000_000


async def chat(node: NodeHandle, key: str, **body: Any) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{node.url}/v1/chat/completions",
            json={**HELLO, **body},
            headers={"Authorization": f"Bearer {key}"},
        ) as resp,
    ):
        return resp.status, await resp.read()


@pytest.fixture
def node(make_node: Callable[..., NodeHandle]) -> NodeHandle:
    return make_node()


@pytest.mark.parametrize(
    ("model", "status", "sent"),
    [("test-fail500", 502, False), ("test-hang", 504, True), ("test-badjson", 502, True)],
)
async def test_upstream_failure_is_a_clear_error_and_costs_the_reservation_at_most(
    node: NodeHandle, model: str, status: int, sent: bool
) -> None:
    """Refused with a status: free. Taken and then no (usable) answer: what the upstream may
    bill for it, the reservation's most: the prompt's bound (~340 tokens) and 1000 output
    tokens at $2 per million (tests/test_floor_charge.py has the exact amounts)."""
    key = node.new_key(BALANCE)
    got, raw = await chat(node, key, model=model)
    assert got == status and b'"error"' in raw
    charged = BALANCE - node.balance(key)
    assert (2000 < charged < 2500) if sent else charged == 0
    node.assert_clean()


@pytest.mark.parametrize("usage", [{"prompt_tokens": -5, "completion_tokens": -7}, None, "lots"])
@pytest.mark.parametrize("stream", [False, True])
async def test_missing_or_negative_usage_is_charged_an_estimate(
    node: NodeHandle, usage: Any, stream: bool
) -> None:
    key = node.new_key(BALANCE)
    got, _ = await chat(node, key, max_tokens=10, stream=stream, mock={"report_usage": usage})
    assert got == 200
    assert 0 < BALANCE - node.balance(key) < 10_000
    node.assert_clean()


@pytest.mark.parametrize("stream", [False, True])
async def test_absurd_usage_is_charged_at_most_the_reservation(
    node: NodeHandle, stream: bool
) -> None:
    key = node.new_key(BALANCE)
    huge = {"prompt_tokens": 10**12, "completion_tokens": 10**12}
    got, _ = await chat(node, key, max_tokens=10, stream=stream, mock={"report_usage": huge})
    assert got == 200
    # bounded by the model's context (128k tokens at $1/Mtok = 128 000 msat) + 10 output tokens
    charged = BALANCE - node.balance(key)
    assert 0 < charged <= 128_000 + 200, charged
    node.assert_clean()


async def test_stream_cut_mid_way_is_charged_what_was_sent(node: NodeHandle) -> None:
    key = node.new_key(BALANCE)
    got, raw = await chat(node, key, model="test-cut", max_tokens=20, stream=True)
    assert got == 200 and b"upstream_error" in raw
    assert 0 < BALANCE - node.balance(key) < 10_000
    node.assert_clean()
