"""A request the upstream may bill is charged what it may bill.

Once the node has written a request to an upstream, the upstream may have read it, and it goes
on writing the whole answer, and bills it, whether or not the node waits for it (OpenRouter's
docs: "the model will continue processing and you will be billed for the complete response"):
no answer in `first_byte_timeout_s`, an answer that is not JSON, an answer past the 64 MB read
limit, the node stopping while it waits. Each is charged the reservation's most: the prompt's
bound and the output limit. What the upstream refuses with a status (5xx, 429) and a connection
that never opened stay free. A failover after a timeout charges the timed-out attempt's most
too, and a model with several upstreams reserves that most once per extra upstream, so that
what all of them may bill stays within the reservation: a balance that cannot hold it gets no
second try.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from node.app import create_app
from node.pricing.billing import PROMPT_OVERHEAD_TOKENS
from node.proxy.upstream import MAX_ANSWER_BYTES
from node.settings import load_settings
from tests.conftest import NodeHandle, node_config
from tests.support.pg import BOTH_BACKENDS, Databases
from tests.support.servers import ThreadedServer
from tests.test_upstreams import PRICE, received, upstream_conf

pytestmark = BOTH_BACKENDS

BALANCE = 1_000_000
MSAT_PER_PROMPT_TOKEN = 1  # $1 per million tokens at $100 000/BTC


def chat(model: str, **extra: Any) -> bytes:
    content = "please answer this question at some length " * 20
    return orjson.dumps(
        {"model": model, "messages": [{"role": "user", "content": content}]} | extra
    )


def most_of(raw: bytes, output_tokens: int = 1000) -> int:
    """The reservation's most: the prompt's bound (its bytes + 256 tokens) and the output limit
    (the model's max_output_tokens when the request sets none) at $2 per million."""
    return (len(raw) + PROMPT_OVERHEAD_TOKENS) * MSAT_PER_PROMPT_TOKEN + output_tokens * 2


async def post(
    node: NodeHandle, key: str, raw: bytes, answer: type = dict
) -> tuple[int, int | None, Any]:
    """Status, X-Cost-Msat (if any) and body (JSON, or bytes) of a chat request sent as `raw`."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{node.url}/v1/chat/completions", data=raw, headers=headers) as resp,
    ):
        cost = resp.headers.get("X-Cost-Msat")
        body = await resp.read() if answer is bytes else await resp.json()
        return resp.status, int(cost) if cost is not None else None, body


# --- sent, then no answer that can be used ---------------------------------------------------


async def test_no_first_byte_in_time_is_charged_the_reservation(node: NodeHandle) -> None:
    key, raw = node.new_key(BALANCE), chat("test-hang")  # its upstream waits 1 s, the mock 3 s
    status, cost, body = await post(node, key, raw)
    assert (status, body["error"]["code"]) == (504, "upstream_timeout")
    assert cost == most_of(raw)
    assert node.balance(key) == BALANCE - most_of(raw)
    node.assert_clean()


async def test_a_malformed_answer_is_charged_the_reservation(node: NodeHandle) -> None:
    key, raw = node.new_key(BALANCE), chat("test-badjson")
    status, cost, _ = await post(node, key, raw)
    assert status == 502
    assert cost == most_of(raw)
    assert node.balance(key) == BALANCE - most_of(raw)
    node.assert_clean()


async def test_an_answer_past_the_read_limit_is_charged_the_whole_reservation(
    node: NodeHandle,
) -> None:
    # test-output-only: prompt free, $2 per million output tokens; 100 tokens reserved: 200 msat
    mock = {"pad_bytes": MAX_ANSWER_BYTES + 1}
    key, raw = node.new_key(BALANCE), chat("test-output-only", max_tokens=100, mock=mock)
    status, cost, _ = await post(node, key, raw)
    assert status == 502
    assert cost == 200
    assert node.balance(key) == BALANCE - 200
    node.assert_clean()


@pytest.mark.parametrize("model", ["test-fail500", "test-fail429"])
async def test_a_request_refused_with_a_status_stays_free(node: NodeHandle, model: str) -> None:
    key = node.new_key(BALANCE)
    status, cost, _ = await post(node, key, chat(model))
    assert status in (502, 429) and not cost
    assert node.balance(key) == BALANCE
    node.assert_clean()


async def test_an_upstream_that_cannot_be_reached_is_free(
    make_node: Callable[..., NodeHandle],
) -> None:
    gone = "http://127.0.0.1:9/v1"  # nothing listens on the discard port
    node = make_node(upstreams=[{"name": n, "base_url": gone} for n in ("mock", "impatient")])
    key = node.new_key(BALANCE)
    status, cost, _ = await post(node, key, chat("test-model"))
    assert status == 502 and not cost
    assert node.balance(key) == BALANCE
    node.assert_clean()


# --- the node stops while the upstream works ---------------------------------------------------


@pytest.fixture
def stoppable(
    upstream: ThreadedServer, tmp_path: Path, store_backend: str, pg_databases: Databases
) -> Iterator[NodeHandle]:
    """A node this test stops itself, with a model whose (plain) answer takes 3 s."""
    store = {"store": {"url": pg_databases.new()}} if store_backend == "postgres" else {}
    config = node_config(upstream.url, tmp_path, **store)
    config["models"].append({"id": "slow-plain", "upstream_model": "test-hang", **PRICE})
    settings = load_settings(None, **config)
    handle = NodeHandle(settings, ThreadedServer(lambda: create_app(settings)).start())
    yield handle
    handle.db.close()


def test_a_request_cut_by_shutdown_while_the_upstream_works_is_charged_the_reservation(
    stoppable: NodeHandle, upstream: ThreadedServer
) -> None:
    key, raw = stoppable.new_key(BALANCE), chat("slow-plain")
    sent_before = received(upstream, "test-hang")
    failed: list[BaseException] = []

    def ask() -> None:
        try:
            asyncio.run(post(stoppable, key, raw))
        except (aiohttp.ClientError, ValueError) as exc:
            failed.append(exc)

    asking = threading.Thread(target=ask)
    asking.start()
    deadline = time.monotonic() + 5
    while received(upstream, "test-hang") == sent_before:  # the upstream has the request
        assert time.monotonic() < deadline
        time.sleep(0.02)
    stoppable.server.stop()  # cancels the request while it waits for the answer
    asking.join(10)
    assert failed, "the client got no answer"
    assert stoppable.balance(key) == BALANCE - most_of(raw)
    stoppable.assert_clean()


# --- failover ----------------------------------------------------------------------------------


@pytest.fixture
def two_upstreams(
    make_node: Callable[..., NodeHandle], upstream: ThreadedServer, upstream_b: ThreadedServer
) -> Callable[[str], NodeHandle]:
    def make(model: str) -> NodeHandle:
        upstreams = [upstream_conf("a", upstream), upstream_conf("b", upstream_b)]
        models = [{**PRICE, "id": model, "upstream": "a", "upstreams": ["b"]}]
        return make_node(upstreams=upstreams, models=models)

    return make


EXACT = {"prompt_tokens": 1000, "completion_tokens": 500}  # 2000 msat as the answer reports


@pytest.mark.parametrize(
    ("model", "stream"),
    [("test-hang@a", False), ("test-stall@a", True)],  # no answer / no first chunk in time
)
async def test_failover_after_a_timeout_charges_the_answer_and_the_timed_out_attempt(
    two_upstreams: Callable[[str], NodeHandle], upstream_b: ThreadedServer, model: str, stream: bool
) -> None:
    node = two_upstreams(model)
    key, raw = node.new_key(BALANCE), chat(model, mock=EXACT, stream=stream)
    before = received(upstream_b, model)
    status, _, body = await post(node, key, raw, answer=bytes)
    assert status == 200 and body
    assert received(upstream_b, model) == before + 1
    assert node.balance(key) == BALANCE - 2000 - most_of(raw)
    node.assert_clean()


async def test_each_timed_out_attempt_is_charged_within_the_reservation(
    two_upstreams: Callable[[str], NodeHandle], upstream_b: ThreadedServer
) -> None:
    node = two_upstreams("test-hang")  # both upstreams hang
    key, raw = node.new_key(BALANCE), chat("test-hang")
    status, cost, _ = await post(node, key, raw)
    assert status == 504
    assert cost == 2 * most_of(raw)
    assert node.balance(key) == BALANCE - 2 * most_of(raw)
    node.assert_clean()


async def test_a_balance_that_holds_one_attempt_gets_no_second(
    two_upstreams: Callable[[str], NodeHandle], upstream_b: ThreadedServer
) -> None:
    node = two_upstreams("test-hang")
    raw = chat("test-hang")
    # the answer's most (prompt + 1000 output tokens) fits; a second one on top does not
    balance = most_of(raw) + most_of(raw) // 2
    key = node.new_key(balance)
    before = received(upstream_b, "test-hang")
    status, cost, _ = await post(node, key, raw)
    assert status == 504
    assert received(upstream_b, "test-hang") == before  # the next upstream was not tried
    assert cost == most_of(raw)
    assert node.balance(key) == balance - most_of(raw)
    node.assert_clean()
