"""Adversarial: a model served by several upstreams is sold at the first one's price.

Rule (issue 20: "multi-route models", README "Money rules"): whatever upstream answers, the
node never pays its bill out of other clients' backing: the reservation, and the charge,
cover the bill of the upstream that served the request.

A model id listed by two upstreams gets routes [A, B] and the price from A's catalogue only
(node/catalogue.py `_routed`: `price_for(model_id, upstreams[0], ...)`; the same holds for a
[[models]] entry with `upstreams = [a, b]` and no price of its own, priced from genai-prices
for A's provider). When A answers an error status (5xx, 429: down, overloaded, rate limited,
which a client can bring about by sending many cheap requests, or failing on one input), the
node fails over to B, which bills at B's price.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import NodeHandle
from tests.support.servers import ThreadedServer
from tests.test_spine import client

BALANCE = 10_000_000
PROMPT, COMPLETION = 1000, 500


class PricedUpstream:
    """An OpenRouter-style upstream: a catalogue with prices, and chat that bills at them."""

    def __init__(self, usd_per_mtok: tuple[str, str], fails: bool) -> None:
        self.prompt_usd, self.completion_usd = usd_per_mtok
        self.fails = fails
        self.bills: list[tuple[int, int]] = []
        self.app = web.Application()
        self.app.add_routes(
            [web.get("/v1/models", self.models), web.post("/v1/chat/completions", self.chat)]
        )

    async def models(self, request: web.Request) -> web.Response:
        per_token = [str(float(p) / 1e6) for p in (self.prompt_usd, self.completion_usd)]
        pricing = {"prompt": per_token[0], "completion": per_token[1]}
        entry = {"id": "shared-model", "pricing": pricing, "context_length": 32000}
        return web.json_response({"object": "list", "data": [entry]})

    async def chat(self, request: web.Request) -> web.Response:
        await request.json()
        if self.fails:
            return web.json_response({"error": {"message": "overloaded"}}, status=503)
        self.bills.append((PROMPT, COMPLETION))
        usage = {"prompt_tokens": PROMPT, "completion_tokens": COMPLETION,
                 "total_tokens": PROMPT + COMPLETION}  # fmt: skip
        message = {"role": "assistant", "content": "tok " * COMPLETION}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        answer: dict[str, Any] = {"id": "x", "object": "chat.completion", "choices": [choice],
                                  "model": "shared-model", "usage": usage}  # fmt: skip
        return web.json_response(answer)


@pytest.fixture
def two_upstreams() -> Iterator[tuple[ThreadedServer, ThreadedServer]]:
    cheap = PricedUpstream(("1", "2"), fails=True)  # $1/$2 per Mtok, answering 503 today
    dear = PricedUpstream(("10", "20"), fails=False)  # $10/$20 per Mtok

    def serve(mock: PricedUpstream) -> ThreadedServer:
        server = ThreadedServer(lambda: mock.app).start()
        server.mock = mock
        return server

    servers = [serve(cheap), serve(dear)]
    yield servers[0], servers[1]
    for server in servers:
        server.stop()


def test_a_failover_is_charged_at_the_price_of_the_upstream_that_answered(
    make_node: Callable[..., NodeHandle], two_upstreams: tuple[ThreadedServer, ThreadedServer]
) -> None:
    """Attack: ask for a model both upstreams list while the cheap one (A, $1/$2 per Mtok)
    answers 503 (overloaded, or rate-limited by the attacker's own cheap requests); the node
    passes it over for B ($10/$20), which answers and bills 10x; the client is charged A's price.

    Impact: 1000 + 500 tokens cost the operator 20 000 msat at B and are charged 2000 msat:
    every request during A's outage (all clients', not only the attacker's) is sold at a loss.

    Expected: a model is priced (reserved and charged) at the dearest of its routes' prices,
    or each attempt at the price of the upstream that answers, with the reservation at the
    dearest; likewise its context length is the largest of its routes' (node/catalogue.py).
    """
    cheap, dear = two_upstreams
    node = make_node(
        upstreams=[
            {"name": "cheap", "base_url": f"{cheap.url}/v1"},
            {"name": "dear", "base_url": f"{dear.url}/v1"},
        ],
        models=[],
    )
    key = node.new_key(BALANCE)
    client(node, key).chat.completions.create(
        model="shared-model",
        messages=[{"role": "user", "content": "x " * 1000}],
        max_tokens=COMPLETION,
    )
    assert dear.mock.bills == [(PROMPT, COMPLETION)]
    billed = PROMPT * 10 + COMPLETION * 20  # msat at $10/$20 per Mtok, $100 000/BTC
    charged = BALANCE - node.balance(key)
    assert charged >= billed, (charged, billed)
    node.assert_clean()
