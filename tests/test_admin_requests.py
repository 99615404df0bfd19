"""The admin's request log, in real Chromium and over HTTP: the records of every account,
filtered by key, model and status, a per-model breakdown, and the CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from node.money.ledger import hash_key
from tests.conftest import NodeHandle
from tests.support.admin_client import PASSWORD, AdminClient
from tests.support.browser import admin_page, chromium, shot, until  # noqa: F401 (chromium: a fixture)
from tests.support.money import call

PROMPT = "a secret prompt that no record keeps"


@pytest.fixture
def log_node(make_node: Callable[..., NodeHandle]) -> NodeHandle:
    return make_node(node={"admin_password": PASSWORD})


async def ask(node: NodeHandle, key: str, model: str) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 5}
    status, _, _ = await call(node, "POST", "/v1/chat/completions", key, json=body)
    return status


async def traffic(node: NodeHandle) -> tuple[int, int]:
    """Key A: two answers from test-model; key B: one from test-output-only, one failure."""
    a, b = node.new_key(1_000_000), node.new_key(1_000_000)
    assert await ask(node, a, "test-model") == 200
    assert await ask(node, a, "test-model") == 200
    assert await ask(node, b, "test-output-only") == 200
    assert await ask(node, b, "test-fail500") >= 500
    ids = [node.ledger.account_id(hash_key(k)) for k in (a, b)]
    assert ids[0] is not None and ids[1] is not None
    return ids[0], ids[1]


async def test_the_request_log_filters_breaks_down_by_model_and_exports(
    chromium: Any,  # noqa: F811
    log_node: NodeHandle,
) -> None:
    a, b = await traffic(log_node)
    page = await admin_page(chromium, log_node.url)
    await page.click("nav button[data-tab=requests]")
    await page.wait_for_selector("#requests-table tbody tr[data-id]")
    assert await page.locator("#requests-table tbody tr").count() == 4
    by_model = page.locator("#by-model-table tbody tr")
    assert await by_model.count() == 3
    model_row = page.locator("#by-model-table tr[data-model='test-model']")
    assert (await model_row.locator("td").nth(1).text_content()) == "2"
    await shot(page, "admin-requests")

    await page.fill("#requests-filter input[name=account_id]", str(a))
    await page.click("#requests-filter button[type=submit]")
    await until(page, "document.querySelectorAll('#requests-table tbody tr[data-id]').length === 2")
    assert await by_model.count() == 1
    await page.fill("#requests-filter input[name=account_id]", str(b))
    await page.select_option("#requests-filter select[name=status]", "failed")
    await page.click("#requests-filter button[type=submit]")
    await until(page, "document.querySelectorAll('#requests-table tbody tr[data-id]').length === 1")
    row = page.locator("#requests-table tbody tr[data-id]")
    assert "test-fail500" in (await row.text_content() or "")
    await page.fill("#requests-filter input[name=account_id]", "")
    await page.select_option("#requests-filter select[name=status]", "")
    await page.select_option("#requests-filter select[name=model]", "test-output-only")
    await page.click("#requests-filter button[type=submit]")
    await until(page, "document.querySelectorAll('#requests-table tbody tr[data-id]').length === 1")
    href = await page.locator("#requests-csv").get_attribute("href")
    assert href == "/admin/api/requests.csv?model=test-output-only"
    async with page.expect_download() as info:
        await page.click("#requests-csv")
    download = await info.value
    rows = list(csv.DictReader(io.StringIO(Path(await download.path()).read_text())))
    assert [r["model"] for r in rows] == ["test-output-only"]
    assert rows[0]["account_id"] == str(b) and rows[0]["status"] == "ok"

    await page.select_option("#requests-filter select[name=model]", "test-hang")
    await page.click("#requests-filter button[type=submit]")
    await page.wait_for_selector("#requests-table tbody tr.empty")  # an empty state, not a blank
    assert "No requests" in (await page.locator("#requests-table").text_content() or "")
    assert PROMPT not in await page.content()
    assert page.errors == []


async def test_the_csv_export_over_http(log_node: NodeHandle) -> None:
    a, b = await traffic(log_node)
    url = log_node.url + "/admin/api/requests.csv"
    async with aiohttp.ClientSession() as anonymous, anonymous.get(url) as r:
        assert r.status == 401  # the admin's session, as every admin API
    async with AdminClient(log_node.url) as admin:
        assert (await admin.login())[0] == 200
        session = admin.session
        async with session.get(url) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/csv")
            assert "attachment" in r.headers["Content-Disposition"]
            text = await r.text()
        assert PROMPT not in text
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == 4
        assert {r["account_id"] for r in rows} == {str(a), str(b)}
        assert sum(int(r["cost_msat"]) for r in rows) > 0
        assert {r["status"] for r in rows} == {"ok", "failed"}
        async with session.get(url, params={"account_id": str(a), "status": "ok"}) as r:
            only = list(csv.DictReader(io.StringIO(await r.text())))
        assert len(only) == 2 and {r["model"] for r in only} == {"test-model"}
        for bad in ({"status": "nope"}, {"account_id": "x1"}, {"account_id": "²"}):
            async with session.get(url, params=bad) as r:
                assert r.status == 400
                error = (await r.json())["error"]
                assert error["param"] in ("status", "account_id")
        async with session.get(log_node.url + "/admin/api/requests", params={"limit": "2"}) as r:
            page = await r.json()
        assert len(page["data"]) == 2 and page["has_more"] is True
        assert {m["model"]: m["requests"] for m in page["by_model"]} == {
            "test-model": 2,
            "test-output-only": 1,
            "test-fail500": 1,
        }
