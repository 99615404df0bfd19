"""The money spine over HTTP: the official OpenAI SDK against a node with operator keys."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any, TypedDict, Unpack

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.conftest import NodeHandle
from tests.support.sdk import async_openai
from tests.support.servers import ThreadedServer

# The node never charges more prompt tokens than the request has bytes (docs/billing.md): a
# request the mock reports 1000 prompt tokens for carries that many bytes.
PAD = {"pad": "." * 1000}
EXACT = {"mock": {"prompt_tokens": 1000, "completion_tokens": 500, **PAD}}  # → 2000 msat


def client(node: NodeHandle, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{node.url}/v1", api_key=key, max_retries=0)


def aclient(node: NodeHandle, key: str) -> openai.AsyncOpenAI:
    return async_openai(f"{node.url}/v1", key)


class Extra(TypedDict, total=False):
    max_tokens: int


class Hello(Extra):
    model: str
    messages: list[ChatCompletionMessageParam]


def hello(model: str = "test-model", **extra: Unpack[Extra]) -> Hello:
    """A chat request saying hello, as the SDK's `create` takes it: `create(**hello())`."""
    return {"model": model, "messages": [{"role": "user", "content": "hello"}], **extra}


def test_completion_is_charged_exactly_the_contract_cost(node: NodeHandle) -> None:
    key = node.new_key(1_000_000)
    answer = client(node, key).chat.completions.create(**hello(max_tokens=500), extra_body=EXACT)
    assert answer.choices[0].message.content
    assert answer.usage is not None and answer.usage.prompt_tokens == 1000
    assert answer.usage.model_extra and answer.usage.model_extra["cost_msat"] == 2000
    assert node.balance(key) == 1_000_000 - 2000
    node.assert_clean()


def test_stream_is_charged_exactly_and_reports_its_cost(node: NodeHandle) -> None:
    key = node.new_key(1_000_000)
    stream = client(node, key).chat.completions.create(
        **hello(max_tokens=500), stream=True, extra_body=EXACT
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "tok " * 500
    usage = chunks[-1].usage
    assert usage is not None and usage.model_extra and usage.model_extra["cost_msat"] == 2000
    assert node.balance(key) == 1_000_000 - 2000
    node.assert_clean()


def test_cost_header_and_upstream_sees_only_its_own_key(
    node: NodeHandle, upstream: ThreadedServer
) -> None:
    key = node.new_key(1_000_000)
    raw = client(node, key).chat.completions.with_raw_response.create(**hello(max_tokens=5))
    assert int(raw.headers["x-cost-msat"]) > 0
    assert raw.headers["x-request-id"]
    seen = upstream.mock.received[-1]
    assert seen["headers"]["Authorization"] == "Bearer sk-upstream-secret"
    assert key not in str(seen)


def test_a_cookie_the_upstream_sets_never_goes_back_upstream(
    make_node: Callable[..., NodeHandle], upstream: ThreadedServer
) -> None:
    # The node's one upstream session serves every client: a cookie kept from one client's
    # answer would go out with the next client's request. (By host name: cookies from a bare
    # IP address are refused anyway.)
    url = upstream.url.replace("127.0.0.1", "localhost") + "/v1"
    node = make_node(upstreams=[{"name": u, "base_url": url} for u in ("mock", "impatient")])
    first, second = node.new_key(1_000_000), node.new_key(1_000_000)
    client(node, first).chat.completions.create(**hello(max_tokens=5))
    client(node, second).chat.completions.create(**hello(max_tokens=5))
    assert "Cookie" not in upstream.mock.received[-1]["headers"]


def test_first_chunk_arrives_while_upstream_still_produces(node: NodeHandle) -> None:
    key = node.new_key(1_000_000)
    started = time.monotonic()
    stream = client(node, key).chat.completions.create(
        **hello("test-slow", max_tokens=5), stream=True
    )
    first = next(iter(stream))
    first_at = time.monotonic() - started
    rest = list(stream)
    done_at = time.monotonic() - started
    assert first.choices[0].delta.content == "tok "
    assert first_at < 1.0 and done_at >= 2.0
    assert rest[-1].usage is not None
    node.assert_clean()


async def test_concurrent_requests_never_overdraw(node: NodeHandle) -> None:
    key = node.new_key(20 * 20)  # 10 output tokens at $2/Mtok = 20 msat: room for 20
    api = aclient(node, key)

    async def one() -> bool:
        try:
            await api.chat.completions.create(**hello("test-output-only", max_tokens=10))
            return True
        except openai.APIStatusError as exc:
            assert exc.status_code == 402
            assert isinstance(exc.body, dict) and exc.body["type"] == "insufficient_quota"
            return False

    results = await asyncio.gather(*(one() for _ in range(50)))
    assert sum(results) == 20
    assert node.balance(key) == 0
    node.assert_clean()


async def test_concurrent_requests_on_a_short_balance_never_overdraw(
    node: NodeHandle, upstream: ThreadedServer
) -> None:
    # No max_tokens: each request first tries to hold the model's whole answer (2000 msat),
    # fails, reads the balance and tries again for what it affords (50 tokens) while the
    # others do the same; one at a time gets it, the rest are refused, none overdraws.
    key = node.new_key(100)
    api = aclient(node, key)
    before = len(upstream.mock.received)

    async def one() -> str:
        try:
            await api.chat.completions.create(**hello("test-output-only"))
            return "paid"
        except openai.APIStatusError as exc:
            assert exc.status_code == 402
            assert isinstance(exc.body, dict)
            return str(exc.body["message"])

    outcomes = await asyncio.gather(*(one() for _ in range(20)))
    paid = outcomes.count("paid")
    assert 1 <= paid <= 5  # the mock answers 10 tokens: 20 msat each
    refusals = {o for o in outcomes if o != "paid"}  # short when read, or taken meanwhile
    assert all(o.startswith("insufficient balance") for o in refusals)
    assert all(r["body"]["max_tokens"] <= 50 for r in upstream.mock.received[before:])
    assert node.balance(key) == 100 - 20 * paid
    node.assert_clean()


def test_capped_max_tokens_when_balance_is_short(
    node: NodeHandle, upstream: ThreadedServer
) -> None:
    key = node.new_key(100)  # 50 output tokens at most
    answer = client(node, key).chat.completions.create(**hello("test-output-only"))
    assert upstream.mock.received[-1]["body"]["max_tokens"] == 50
    assert answer.usage is not None
    assert node.balance(key) == 100 - 20  # the mock answered 10 tokens
    node.assert_clean()


def test_answer_without_usage_is_charged_an_estimate(node: NodeHandle) -> None:
    key = node.new_key(1_000_000)
    answer = client(node, key).chat.completions.create(**hello("test-nousage", max_tokens=8))
    assert answer.usage is not None and answer.usage.model_extra
    assert answer.usage.model_extra["estimated"] is True
    assert 0 < answer.usage.model_extra["cost_msat"] == 1_000_000 - node.balance(key)
    stream = client(node, key).chat.completions.create(
        **hello("test-nousage", max_tokens=8), stream=True
    )
    assert list(stream)[-1].usage is not None
    assert node.balance(key) < 1_000_000 - answer.usage.model_extra["cost_msat"]
    node.assert_clean()


def test_dropped_stream_is_charged_and_releases_its_reservation(node: NodeHandle) -> None:
    key = node.new_key(1_000_000)
    stream = client(node, key).chat.completions.create(
        **hello("test-slow", max_tokens=50), stream=True, extra_body={"mock": {"pause_s": 1}}
    )
    next(iter(stream))
    stream.close()  # the client goes away while the upstream pauses
    deadline = time.monotonic() + 10
    while node.ledger.open_reservations() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert node.balance(key) < 1_000_000
    node.assert_clean()


def test_upstream_breaking_mid_stream_charges_what_was_sent(node: NodeHandle) -> None:
    key = node.new_key(1_000_000)
    stream = client(node, key).chat.completions.create(
        **hello("test-cut", max_tokens=10), stream=True
    )
    with pytest.raises(openai.APIError):
        list(stream)
    assert node.balance(key) < 1_000_000
    node.assert_clean()


def test_estimate_agrees_with_what_a_request_is_charged(node: NodeHandle) -> None:
    import urllib.error
    import urllib.parse
    import urllib.request

    def get(query: dict[str, object]) -> tuple[int, dict[str, Any]]:
        url = f"{node.url}/v1/estimate?{urllib.parse.urlencode(query)}"
        try:
            with urllib.request.urlopen(url) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    params = {"model": "test-model", "input_tokens": 1000, "output_tokens": 500}
    _, estimate = get(params)
    assert estimate.pop("pricing")["prompt"] == "0.000001"  # the model's prices, per token
    assert estimate == {
        "model": "test-model",
        "input_tokens": 1000,
        "output_tokens": 500,
        "cost_msat": 2000,
        "cost_sat": 2,
    }
    key = node.new_key(10_000)
    client(node, key).chat.completions.create(**hello(max_tokens=500), extra_body=EXACT)
    assert node.balance(key) == 10_000 - estimate["cost_msat"]
    status, bad = get({**params, "input_tokens": "-4"})
    assert status == 400 and bad["error"]["param"] == "input_tokens"


def test_models_list_prices_in_usd_and_sat(node: NodeHandle) -> None:
    key = node.new_key(1)
    models = client(node, key).models.list().data
    entry = next(m for m in models if m.id == "test-model")
    extra = entry.model_extra or {}
    assert extra["pricing"]["prompt"] == 0.000001 and extra["pricing"]["completion"] == 0.000002
    # $1/Mtok at $100 000/BTC = 0.001 sat per token
    assert extra["sats_pricing"]["prompt"] == 0.001
    assert extra["context_length"] > 0 and extra["max_output_tokens"] == 1000
    one = client(node, key).models.retrieve("test-model")
    assert (one.model_extra or {})["sats_pricing"] == extra["sats_pricing"]
    with pytest.raises(openai.NotFoundError):
        client(node, key).models.retrieve("no-such-model")
