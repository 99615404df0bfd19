"""A node selling models on a mock Anthropic upstream and the OpenAI-compatible mock.

A pytest plugin (tests/conftest.py): `claude_upstream` (a MockAnthropic server, per module) and
`mnode`, a node with `test-model` on the OpenAI-compatible mock ($1 in, $2 out per Mtok) and
`claude-*` models on the Anthropic one. Claude prices: $3 in, $15 out, $3.75 cache write,
$0.30 cache read per Mtok, at $100 000/BTC: one USD per Mtok is one msat a token, so a cost is
`ceil(3 fresh + 3.75 written + 0.3 read + 15 out)` msat (`claude_cost`); `claude-nocache` has
no cache prices.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import anthropic
import pytest

from tests.support.anthropic_upstream import API_KEY, MockAnthropic
from tests.support.servers import ThreadedServer, serve_mock

if TYPE_CHECKING:
    from tests.conftest import NodeHandle

HI: Any = [{"role": "user", "content": "hi"}]
CLAUDE = {"input_usd_per_mtok": 3.0, "output_usd_per_mtok": 15.0,
          "cache_write_usd_per_mtok": 3.75, "cache_read_usd_per_mtok": 0.3,
          "context_length": 200_000, "max_output_tokens": 64_000}  # fmt: skip


def claude_cost(usage: Any) -> int:
    """msat, from Anthropic's four counts (an SDK Usage or a dict)."""
    get: Callable[[str], Any] = (
        usage.get if isinstance(usage, dict) else lambda name: getattr(usage, name)
    )
    usd: Fraction = (
        3 * get("input_tokens")
        + Fraction(15, 4) * (get("cache_creation_input_tokens") or 0)
        + Fraction(3, 10) * (get("cache_read_input_tokens") or 0)
        + 15 * get("output_tokens")
    )
    return math.ceil(usd)


@pytest.fixture(scope="module")
def claude_upstream() -> Iterator[ThreadedServer]:
    yield from serve_mock(MockAnthropic(listed=["claude-mock"]))


@pytest.fixture
def mnode(
    make_node: Callable[..., NodeHandle],
    upstream: ThreadedServer,
    claude_upstream: ThreadedServer,
    mint: Any,
) -> NodeHandle:
    openai_price = {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0}
    models = [{"id": "test-model", "upstream": "mock", **openai_price}]
    models += [
        {"id": name, "upstream": "claude", **CLAUDE}
        for name in ("claude-mock", "claude-slow", "claude-cut", "claude-midstream",
                     "claude-sonnet-4-5", "claude-haiku-4-5")
    ]  # fmt: skip
    cacheless = {k: v for k, v in CLAUDE.items() if not k.startswith("cache")}
    models.append({"id": "claude-nocache", "upstream": "claude", **cacheless})
    upstreams = [
        {"name": "mock", "base_url": f"{upstream.url}/v1", "api_key": "sk-upstream-secret"},
        {"name": "claude", "kind": "anthropic", "base_url": f"{claude_upstream.url}/v1",
         "api_key": API_KEY, "list_models": False},
    ]  # fmt: skip
    return make_node(cashu={"mints": [mint.url]}, upstreams=upstreams, models=models)


def sdk(node: NodeHandle, key: str = "unused", **headers: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=node.url, api_key=key, max_retries=0, default_headers=headers, timeout=30
    )
