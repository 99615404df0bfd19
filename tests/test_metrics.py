"""GET /metrics: Prometheus text that parses and moves as requests are made."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

import wallet as cashu
from tests.conftest import NodeHandle
from tests.support.httpfetch import fetch
from tests.support.mints import MintInfo, RefWallet
from tests.support.servers import ThreadedServer

# (the pad: a body with the bytes of the 1000 prompt tokens charged, see docs/billing.md)
EXACT = {"mock": {"prompt_tokens": 1000, "completion_tokens": 500, "pad": "." * 1000}}
CHAT = "/v1/chat/completions"


def scrape(node: NodeHandle) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    reply = fetch(f"{node.url}/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(reply.body.decode())
        for s in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def chat(node: NodeHandle, key: str, model: str = "test-model", **extra: object) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return fetch(f"{node.url}{CHAT}", "POST", {"Authorization": f"Bearer {key}"}, body).status


def test_requests_cost_and_latency_move_with_traffic(node: NodeHandle) -> None:
    key = node.new_key(1_000_000)
    before = scrape(node)
    assert chat(node, key, max_tokens=500, mock=EXACT["mock"]) == 200
    assert chat(node, key, max_tokens=500, stream=True, mock=EXACT["mock"]) == 200
    after = scrape(node)
    ok = {"route": CHAT, "model": "test-model", "status": "200"}
    assert (
        value(after, "nutgate_requests_total", **ok) - value(before, "nutgate_requests_total", **ok)
        == 2
    )
    assert value(after, "nutgate_charged_msat_total", model="test-model") == 4000
    assert value(after, "nutgate_request_duration_seconds_count", route=CHAT) == 2
    assert value(after, "nutgate_request_overhead_seconds_count", route=CHAT) == 2
    overhead = value(after, "nutgate_request_overhead_seconds_sum", route=CHAT)
    latency = value(after, "nutgate_request_duration_seconds_sum", route=CHAT)
    assert 0 <= overhead < latency


def test_balances_outstanding_are_read_from_the_ledger(node: NodeHandle) -> None:
    assert value(scrape(node), "nutgate_balances_outstanding_msat") == 0
    key = node.new_key(50_000)  # operator credit: spends, owed to nobody as ecash
    node.new_key(7_000)
    assert value(scrape(node), "nutgate_balances_outstanding_msat") == 0
    assert value(scrape(node), "nutgate_balances_credit_msat") == 57_000
    assert chat(node, key, max_tokens=500, mock=EXACT["mock"]) == 200
    samples = scrape(node)
    assert value(samples, "nutgate_balances_credit_msat") == 55_000
    assert value(samples, "nutgate_balances_reserved_msat") == 0
    assert value(samples, "nutgate_accounts") == 2


def test_errors_are_counted_by_status_and_upstream_failures_by_upstream(node: NodeHandle) -> None:
    key = node.new_key(1_000_000)
    assert chat(node, key, model="test-fail500") == 502
    assert chat(node, key, model="no-such-model") == 404
    assert chat(node, "sk-unknown-key-0000") == 401
    assert fetch(f"{node.url}/no/such/path").status == 404
    samples = scrape(node)
    assert value(samples, "nutgate_upstream_errors_total", upstream="mock", code="upstream_error")
    assert (
        value(samples, "nutgate_requests_total", route=CHAT, model="test-fail500", status="502")
        == 1
    )
    assert value(samples, "nutgate_requests_total", route=CHAT, model="", status="404") == 1
    assert value(samples, "nutgate_requests_total", route=CHAT, model="", status="401") == 1
    # an unknown path is one bounded series, whatever the path was
    assert value(samples, "nutgate_requests_total", route="unmatched", model="", status="404")


def test_broken_stream_counts_as_an_upstream_error(node: NodeHandle) -> None:
    key = node.new_key(1_000_000)
    assert chat(node, key, model="test-cut", max_tokens=10, stream=True) == 200
    samples = scrape(node)
    assert (
        value(
            samples, "nutgate_upstream_errors_total", upstream="mock", code="upstream_stream_broken"
        )
        == 1
    )


async def test_ecash_in_out_and_mint_failures_are_counted(
    make_node: Callable[..., NodeHandle], mint: MintInfo, ref_wallet: RefWallet
) -> None:
    dead_mint = "http://127.0.0.1:9"  # trusted, but nothing listens there
    node = make_node(cashu={"mints": [mint.url, dead_mint]})
    token = await ref_wallet.token(mint.url, 50)
    body = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}], **EXACT}
    reply = fetch(f"{node.url}{CHAT}", "POST", {"X-Cashu": token}, {**body, "max_tokens": 500})
    assert reply.status == 200
    change_sat = cashu.parse_token(reply.headers["X-Cashu"]).amount
    elsewhere = replace(cashu.parse_token(await ref_wallet.token(mint.url, 5)), mint=dead_mint)
    assert chat(node, cashu.serialize_v4(elsewhere)) == 503
    samples = scrape(node)
    assert value(samples, "nutgate_tokens_redeemed_msat_total", mint=mint.url) == 50_000
    assert value(samples, "nutgate_tokens_paid_out_msat_total", mint=mint.url) == change_sat * 1000
    assert change_sat == 48  # 50 sat less the 2000 msat the request cost
    assert value(samples, "nutgate_mint_errors_total", mint=dead_mint, kind="unreachable") >= 1


def test_openmetrics_is_served_to_scrapers_that_ask_for_it(node: NodeHandle) -> None:
    reply = fetch(f"{node.url}/metrics", headers={"Accept": "application/openmetrics-text"})
    assert reply.headers["Content-Type"].startswith("application/openmetrics-text")
    # prometheus_client's OpenMetrics parser has no annotations
    families = list(openmetrics_families(reply.body.decode()))  # type: ignore[no-untyped-call]
    assert "nutgate_balances_outstanding_msat" in {f.name for f in families}


def test_each_node_has_its_own_registry(make_node: Callable[..., NodeHandle]) -> None:
    first, second = make_node(), make_node()
    key = first.new_key(1_000_000)
    assert chat(first, key) == 200
    ok = {"route": CHAT, "model": "test-model", "status": "200"}
    assert value(scrape(first), "nutgate_requests_total", **ok) == 1
    assert value(scrape(second), "nutgate_requests_total", **ok) == 0


def test_failed_over_upstream_calls_are_counted_per_upstream(
    make_node: Callable[..., NodeHandle], upstream: ThreadedServer, upstream_b: ThreadedServer
) -> None:
    price = {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0}
    node = make_node(
        upstreams=[
            {"name": "a", "base_url": f"{upstream.url}/v1"},
            {"name": "b", "base_url": f"{upstream_b.url}/v1"},
        ],
        models=[{"id": "test-fail500@a", "upstream": "a", "upstreams": ["b"], **price}],
    )
    assert chat(node, node.new_key(1_000_000), model="test-fail500@a") == 200  # b answered
    failed = {
        labels: v
        for (name, labels), v in scrape(node).items()
        if name == "nutgate_upstream_errors_total"
    }
    assert failed == {frozenset({("upstream", "a"), ("code", "upstream_error")}): 1.0}
