"""The admin page in real Chromium: log in, rename the node, add an upstream, chart, earnings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from node.parts import PARTS
from tests.conftest import NodeHandle
from tests.support.admin_client import PASSWORD
from tests.support.browser import chromium, new_page, shot, until  # noqa: F401 (chromium: a fixture)
from tests.support.money import call

HELLO = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


@pytest.fixture
def page_node(make_node: Callable[..., NodeHandle], mint: Any) -> NodeHandle:
    return make_node(
        node={"admin_password": PASSWORD},
        cashu={"mints": [mint.url]},
        pricing={"request_fee_msat": 5000},
    )


async def log_in(browser: Any, node: NodeHandle) -> Any:
    page = await new_page(browser)
    await page.goto(node.url + "/admin")
    await page.fill("#password", "not it")
    await page.click("#login-form button")
    await page.wait_for_selector("#login-error:has-text('wrong password')")
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button")
    await page.wait_for_selector("#app:not([hidden])")
    return page


async def get_json(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.json(content_type=None)


async def test_log_in_and_rename_the_node(chromium: Any, page_node: NodeHandle) -> None:  # noqa: F811
    page = await log_in(chromium, page_node)
    await page.click("nav button[data-tab=settings]")
    name = page.locator("input[name='node.name']")
    await name.fill("Browser-named node")
    await page.locator("input[name='pricing.markup']").fill("-1")
    await page.click("#settings-save")
    error = page.locator("[data-error='pricing.markup']")
    await error.wait_for()
    await until(
        page, "document.querySelector(\"[data-error='pricing.markup']\").textContent.length > 0"
    )
    assert "greater than 0" in await error.text_content()
    await shot(page, "admin-settings-invalid")
    await page.locator("input[name='pricing.markup']").fill("1")
    await page.click("#settings-save")
    await page.wait_for_selector("#settings-status:has-text('saved and applied')")
    await page.wait_for_selector("#node-name:has-text('Browser-named node')")
    await shot(page, "admin-settings-saved")
    node = page_node.server.app[PARTS]
    assert node.settings.node.name == "Browser-named node"
    announced = node.nostr._announcement
    assert announced is not None and announced.name == "Browser-named node"
    status, info = await get_json(page_node.url + "/v1/info")
    assert status == 200, info
    assert info["name"] == "Browser-named node"
    assert page.errors == []


async def test_add_an_upstream_and_see_its_models(chromium: Any, page_node: NodeHandle) -> None:  # noqa: F811
    base = page_node.settings.upstreams[0].base_url
    page = await log_in(chromium, page_node)
    await page.click("nav button[data-tab=upstreams]")
    await page.fill("#upstream-form input[name=name]", "from-browser")
    await page.fill("#upstream-form input[name=base_url]", base)
    await page.fill("#upstream-form input[name=api_key]", "sk-typed-in-browser")
    await page.click("#upstream-form button")
    await page.wait_for_selector("#upstream-models li:has-text('mock-model')")
    row = page.locator("#upstreams-table tr[data-name='from-browser']")
    assert "set" in await row.text_content()
    assert "sk-typed-in-browser" not in await page.content()
    await shot(page, "admin-upstreams")
    assert page.errors == []


async def test_dashboard_chart_and_withdrawing_earnings(
    chromium: Any,  # noqa: F811
    page_node: NodeHandle,
    mint: Any,
    ref_wallet: Any,
) -> None:
    token = await ref_wallet.token(mint.url, 100)
    for _ in range(3):
        status, _, _ = await call(page_node, "POST", "/v1/chat/completions", token, json=HELLO)
        assert status == 200
    page = await log_in(chromium, page_node)
    await page.wait_for_selector("#chart svg path.balances_msat")
    assert await page.locator("#chart svg rect.bar").count() >= 1
    assert await page.locator("#chart svg path.line").count() == 2
    cards = await page.locator("#cards").inner_text()  # credit and remainders shown apart
    assert "Operator credit" in cards and "Remainders" in cards and "ecash-backed" in cards
    await page.click("#audit-run")
    await page.wait_for_selector("#audit-result:has-text('solvent: yes')")
    await shot(page, "admin-dashboard")
    await page.click("nav button[data-tab=earnings]")
    await page.wait_for_selector("#withdrawable:has-text('15')")
    await page.fill("#withdraw-amount", "16")
    await page.click("#withdraw-button")
    await page.wait_for_selector("[data-error=withdraw]:has-text('more than the earnings')")
    await page.fill("#withdraw-amount", "")
    await page.click("#withdraw-button")
    await page.wait_for_selector("#withdraw-token:not([hidden])")
    cashu_token = await page.locator("#withdraw-token").input_value()
    assert cashu_token.startswith("cashuB")
    await shot(page, "admin-earnings")
    assert await ref_wallet.receive(cashu_token) == 15
    await page.click("nav button[data-tab=accounts]")
    await page.locator("#accounts-table tbody tr").first.click()
    await page.wait_for_selector("#entries-table td:has-text('charge')")
    await shot(page, "admin-accounts")
    assert page.errors == []


async def test_a_withdrawn_token_is_retrievable_after_a_reload_until_marked_collected(
    chromium: Any,  # noqa: F811
    page_node: NodeHandle,
    mint: Any,
    ref_wallet: Any,
) -> None:
    token = await ref_wallet.token(mint.url, 100)
    for _ in range(2):
        status, _, _ = await call(page_node, "POST", "/v1/chat/completions", token, json=HELLO)
        assert status == 200
    page = await log_in(chromium, page_node)
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await page.click("nav button[data-tab=earnings]")
    await page.wait_for_selector("#withdrawable:has-text('10')")
    await page.click("#withdraw-button")
    await page.wait_for_selector("#withdraw-result:not([hidden])")
    first = await page.locator("#withdraw-token").input_value()
    assert first.startswith("cashuB")
    said = await page.locator("#withdraw-said").text_content()
    assert "until you mark it collected" in (said or "")
    await page.click("#token-copy")
    await page.wait_for_selector("#token-status:has-text('copied')")
    assert await page.evaluate("navigator.clipboard.readText()") == first

    await page.reload()  # the page forgets it; the node does not
    await page.wait_for_selector("#app:not([hidden])")
    await page.click("nav button[data-tab=earnings]")
    await page.click("#payouts-table tbody tr >> text=Show")
    await page.wait_for_selector("#withdraw-result:not([hidden])")
    assert await page.locator("#withdraw-token").input_value() == first
    await shot(page, "admin-earnings-token")
    await page.click("#token-collected")
    await page.wait_for_selector("#payouts-table tbody td:has-text('collected')")
    assert await page.locator("#withdraw-result").is_hidden()
    assert await ref_wallet.receive(first) == 10
    status, _ = await get_json(page_node.url + "/admin/api/earnings")
    assert status == 401  # not without the session; the page's own view:
    earnings = await page.evaluate("fetch('/admin/api/earnings').then((r) => r.json())")
    assert [p.get("cashu_token") for p in earnings["payouts"]] == [None]
    assert earnings["payouts"][0]["collected"] is True
    assert page.errors == []


async def test_the_upstreams_tab_shows_each_upstreams_health(
    chromium: Any,  # noqa: F811
    make_node: Callable[..., NodeHandle],
    upstream: Any,
) -> None:
    live = upstream.url + "/v1"
    fast = {"health_interval_s": 0.1, "list_models": False}
    ups = [
        {"name": "up", "base_url": live, **fast},
        {"name": "gone", "base_url": "http://127.0.0.1:9/v1", **fast},
    ]
    node = make_node(node={"admin_password": PASSWORD}, upstreams=ups, models=[])
    page = await log_in(chromium, node)
    await page.click("nav button[data-tab=upstreams]")
    for name, health in (("up", "active"), ("gone", "down")):
        cell = f"#upstreams-table tr[data-name='{name}'] td.health-{health}"
        for _ in range(50):  # the monitor checks every 0.1 s; the tab reads it when opened
            if await page.locator(cell).count():
                break
            await page.click("nav button[data-tab=upstreams]")
            await page.wait_for_timeout(100)
        assert await page.locator(cell).text_content() == health
    assert page.errors == []
