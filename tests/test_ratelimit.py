"""Rate limits: per account key, per IP for everything else; OpenAI's headers; 429 + Retry-After."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable

import pytest

from node.http.ratelimit import MemoryRateStore, Window, duration
from node.money.ledger import hash_key
from node.parts import PARTS
from tests.conftest import NodeHandle
from tests.support.httpfetch import Reply, fetch

THREE_A_MINUTE = {"per_minute": 3, "per_hour": 0, "per_day": 0}


def models(node: NodeHandle, key: str | None = None, header: str = "Authorization") -> Reply:
    headers = {}
    if key is not None:
        headers[header] = f"Bearer {key}" if header == "Authorization" else key
    return fetch(f"{node.url}/v1/models", headers=headers)


def limit_headers(reply: Reply) -> tuple[str | None, str | None, str | None]:
    h = reply.headers
    return (
        h["x-ratelimit-limit-requests"],
        h["x-ratelimit-remaining-requests"],
        h["x-ratelimit-reset-requests"],
    )


def test_key_trips_at_the_configured_count_with_headers(
    make_node: Callable[..., NodeHandle],
) -> None:
    node = make_node(limits=THREE_A_MINUTE)
    key = node.new_key(1000)
    replies = [models(node, key) for _ in range(4)]
    assert [r.status for r in replies] == [200, 200, 200, 429]
    assert [limit_headers(r)[:2] for r in replies] == [
        ("3", "2"),
        ("3", "1"),
        ("3", "0"),
        ("3", "0"),
    ]
    assert limit_headers(replies[0])[2] == "20s"  # one request drains in 60 s / 3
    refused = replies[3]
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert "3 requests per minute" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 20
    assert int(refused.headers["retry-after-ms"]) > 19_000
    assert refused.headers["x-request-id"]


def test_unpaid_calls_are_limited_per_ip_and_keys_have_their_own_bucket(
    make_node: Callable[..., NodeHandle],
) -> None:
    node = make_node(limits=THREE_A_MINUTE)
    assert [models(node).status for _ in range(3)] == [200, 200, 200]
    assert models(node).status == 429
    # invented keys are unpaid calls: they share the address's bucket
    assert models(node, "sk-invented-0123456789").status == 429
    assert models(node, "cashuBinventedtoken0123", header="X-Cashu").status == 429
    # a key that an account holds is counted on its own
    assert models(node, node.new_key(1000)).status == 200


def test_buckets_are_keyed_by_a_hash_never_the_secret(
    make_node: Callable[..., NodeHandle],
) -> None:
    node = make_node(limits=THREE_A_MINUTE)
    key = node.new_key(1000)
    models(node, key)
    limiter = node.server.app[PARTS].limiter
    assert limiter is not None
    store = limiter.store
    assert isinstance(store, MemoryRateStore)
    keys = list(store._buckets)
    assert keys == ["key:" + hash_key(key)]
    assert all(key not in k for k in keys)


def test_the_smallest_remaining_window_is_reported(make_node: Callable[..., NodeHandle]) -> None:
    node = make_node(limits={"per_minute": 60, "per_hour": 2, "per_day": 0})
    first = models(node)
    assert limit_headers(first) == ("2", "1", "30m0s")
    assert models(node).status == 200
    refused = models(node)
    assert refused.status == 429
    assert "per hour" in refused.json()["error"]["message"]


def test_zero_turns_limits_off(make_node: Callable[..., NodeHandle]) -> None:
    node = make_node(limits={"per_minute": 0, "per_hour": 0, "per_day": 0})
    replies = [models(node) for _ in range(10)]
    assert {r.status for r in replies} == {200}
    assert replies[0].headers["x-ratelimit-limit-requests"] is None


def test_health_and_metrics_are_not_limited(make_node: Callable[..., NodeHandle]) -> None:
    node = make_node(limits={"per_minute": 1, "per_hour": 0, "per_day": 0})
    statuses = [fetch(f"{node.url}{p}").status for p in ["/health", "/metrics"] * 3]
    assert set(statuses) == {200}
    assert models(node).status == 200
    assert models(node).status == 429


def test_streamed_answers_carry_request_id_and_limit_headers(node: NodeHandle) -> None:
    key = node.new_key(1_000_000)
    body = {
        "model": "test-model",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "max_tokens": 5,
    }
    request = urllib.request.Request(
        f"{node.url}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert len(resp.headers["x-request-id"]) == 32
        assert resp.headers["x-ratelimit-limit-requests"] == "60"
        assert resp.headers["x-ratelimit-remaining-requests"] == "59"
        assert resp.read().endswith(b"data: [DONE]\n\n")


# --- the store on its own, with a clock in hand ---------------------------------------------


def test_a_full_bucket_drains_at_limit_per_period() -> None:
    store = MemoryRateStore([Window(3, 60.0)])
    assert [store.hit("k", 0.0).allowed for _ in range(4)] == [True, True, True, False]
    refused = store.hit("k", 1.0)
    assert not refused.allowed and refused.retry_after_s == pytest.approx(19.0)
    assert not store.hit("k", 19.9).allowed
    again = store.hit("k", 20.0)
    assert again.allowed and again.remaining == 0
    assert store.hit("other", 20.0).remaining == 2  # keys do not share


def test_a_request_must_fit_every_window() -> None:
    store = MemoryRateStore([Window(10, 60.0), Window(2, 3600.0)])
    assert [store.hit("k", t).allowed for t in (0.0, 1.0, 2.0)] == [True, True, False]
    refused = store.hit("k", 3.0)
    assert refused.window.limit == 2 and refused.retry_after_s == pytest.approx(1800 - 3.0)


def test_idle_buckets_are_swept() -> None:
    store = MemoryRateStore([Window(3, 60.0)])
    store.hit("a", 0.0)
    store.hit("b", 65.0)
    store.hit("c", 70.0)  # sweeps: "a" has drained, "b" has not
    assert len(store) == 2


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.02, "20ms"), (1, "1s"), (20, "20s"), (360, "6m0s"), (3725.5, "1h2m5.5s"), (90, "1m30s")],
)
def test_reset_durations_read_like_openai(seconds: float, text: str) -> None:
    assert duration(seconds) == text
