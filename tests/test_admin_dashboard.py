"""The dashboard's table per model (requests, errors, revenue, upstream cost) for a period, and
the BTC rate in use with its source: over HTTP and in real Chromium.

The test node sells at $1/$2 per Mtok and $100 000 per BTC, so a token costs the upstream
1 msat in and 2 msat out; with markup 2 and a 1000 msat request fee the client pays twice that
plus the fee, and the upstream cost is what is left without them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from node.money.records import Record, Records
from tests.conftest import NodeHandle
from tests.support.admin_client import PASSWORD, AdminClient
from tests.support.browser import admin_page, chromium, shot  # noqa: F401 (chromium: a fixture)
from tests.support.money import call
from tests.support.pg import BOTH_BACKENDS
from tests.test_admin_layout import OVERFLOW

FEE = 1000


@pytest.fixture
def marked_node(make_node: Callable[..., NodeHandle]) -> NodeHandle:
    pricing = {"btc_usd": 100000.0, "markup": 2.0, "request_fee_msat": FEE}
    return make_node(node={"admin_password": PASSWORD}, pricing=pricing)


async def ask(node: NodeHandle, key: str, model: str) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    status, _, _ = await call(node, "POST", "/v1/chat/completions", key, json=body)
    return status


async def traffic(node: NodeHandle) -> None:
    key = node.new_key(5_000_000)
    for model in ("test-model", "test-model", "test-output-only"):
        assert await ask(node, key, model) == 200
    assert await ask(node, key, "test-fail500") >= 500  # refused: nothing billed, an error
    assert await ask(node, key, "test-hang") == 504  # sent, timed out: billed the reservation


def old_record(node: NodeHandle, days: int) -> None:
    """A request of `days` ago, written as the settlement writes one."""
    at = int(time.time()) - days * 86400
    record = Record(f"old-{days}", 1, None, at, "/v1/chat/completions", "test-model", "mock",
                    10, 5, 0, 0, 3000, "ok", 20, upstream_cost_msat=1000)  # fmt: skip
    with node.db.transaction() as conn:
        Records(node.db, 30).write(conn, record)


@BOTH_BACKENDS
async def test_per_model_revenue_errors_and_upstream_cost_over_http(
    marked_node: NodeHandle,
) -> None:
    await traffic(marked_node)
    old_record(marked_node, 3)
    async with AdminClient(marked_node.url) as admin:
        await admin.login()
        rows = (await admin.get("/admin/api/requests?limit=200"))["data"]
        day = await admin.get("/admin/api/stats?hours=24")
        week = await admin.get("/admin/api/stats?hours=168&bucket_s=21600")
    for r in rows:  # the upstream's cost: usage at its price, no markup, no fee
        if r["status"] == "ok" and r["request_id"] != "old-3":
            prompt = 0 if r["model"] == "test-output-only" else r["prompt_tokens"]
            assert r["upstream_cost_msat"] == prompt + 2 * r["completion_tokens"] > 0
            assert r["cost_msat"] == 2 * r["upstream_cost_msat"] + FEE
    by = {m["model"]: m for m in day["models"]}
    assert set(by) == {"test-model", "test-output-only", "test-fail500", "test-hang"}
    ok = [r for r in rows if r["model"] == "test-model" and r["request_id"] != "old-3"]
    assert by["test-model"] == {
        "model": "test-model",
        "requests": 2,
        "errors": 0,
        "revenue_msat": sum(r["cost_msat"] for r in ok),
        "upstream_cost_msat": sum(r["upstream_cost_msat"] for r in ok),
    }
    assert by["test-fail500"]["errors"] == 1 and by["test-fail500"]["revenue_msat"] == 0
    assert by["test-fail500"]["upstream_cost_msat"] == 0
    hang = by["test-hang"]  # no usage: the charge without the node's fee and markup
    assert hang["errors"] == 1 and hang["revenue_msat"] > FEE
    assert hang["upstream_cost_msat"] == (hang["revenue_msat"] - FEE) // 2
    week_by = {m["model"]: m for m in week["models"]}
    assert week_by["test-model"]["requests"] == 3  # the request of 3 days ago is in the week
    assert (
        week_by["test-model"]["upstream_cost_msat"] == by["test-model"]["upstream_cost_msat"] + 1000
    )
    assert day["btc_rate"] == {
        "usd": "100000.00",
        "source": {"kind": "fixed", "setting": "pricing.btc_usd"},
    }
    assert day["history_days"] > 0 and week["since"] <= day["since"] - 6 * 86400


async def test_the_key_holder_does_not_see_the_upstream_cost(marked_node: NodeHandle) -> None:
    key = marked_node.new_key(1_000_000)
    assert await ask(marked_node, key, "test-model") == 200
    status, _, page = await call(marked_node, "GET", "/v1/requests", key)
    assert status == 200 and page["data"]
    assert all("upstream_cost_msat" not in r for r in page["data"])


async def test_a_live_rate_shows_its_exchanges(make_node: Callable[..., NodeHandle]) -> None:
    dead = "http://127.0.0.1:9/ticker#kraken"  # nothing answers: no rate, said plainly
    pricing = {"btc_usd": None, "btc_usd_sources": [dead], "btc_usd_timeout_s": 0.5}
    node = make_node(node={"admin_password": PASSWORD}, pricing=pricing)
    async with AdminClient(node.url) as admin:
        await admin.login()
        rate = (await admin.get("/admin/api/stats"))["btc_rate"]
    assert rate["usd"] is None and "no BTC/USD rate" in rate["error"]
    assert rate["source"] == {
        "kind": "exchanges",
        "exchanges": ["127.0.0.1"],
        "median_of": 0,
        "age_s": None,
    }


@pytest.mark.parametrize("width", [1280, 420])
async def test_the_dashboard_shows_each_model_and_the_rate_for_the_period(
    chromium: Any,  # noqa: F811
    marked_node: NodeHandle,
    width: int,
) -> None:
    await traffic(marked_node)
    old_record(marked_node, 3)
    page = await admin_page(chromium, marked_node.url, width)
    row = page.locator("#dashboard-models tr[data-model='test-model']")
    await row.wait_for()
    cells = await row.locator("td").all_text_contents()
    assert cells[:3] == ["test-model", "2", "0"]
    hang = await page.locator("#dashboard-models tr[data-model='test-hang'] td").all_text_contents()
    assert hang[2] == "1"
    rate = await page.locator("#btc-rate").text_content() or ""
    assert "$100,000" in rate and "fixed by pricing.btc_usd" in rate
    await page.click("#periods button[data-hours='168']")
    await page.wait_for_selector("#models-title:has-text('last 7 days')")
    # the wait polls in the page, whose CSP forbids eval: a selector, not a function
    await page.wait_for_selector(
        "#dashboard-models tr[data-model='test-model'] td:nth-child(2):text-is('3')"
    )
    await shot(page, f"admin-dashboard-models-{width}")
    measured = await page.evaluate(OVERFLOW)
    assert measured["scroll"] <= measured["width"] and measured["wide"] == [], measured
    assert page.errors == []
    await page.context.close()
