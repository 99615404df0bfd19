"""The admin page at a desktop's and a phone's width (1280 and 420 px), in real Chromium: every
tab fits the width (no horizontal scrolling), with a screenshot of each in tests/artifacts/."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from node.settings.money import PricingSection
from tests.conftest import NodeHandle
from tests.support.admin_client import PASSWORD
from tests.support.browser import admin_page, chromium, shot, until  # noqa: F401 (chromium: a fixture)
from tests.support.money import call

HELLO = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}

TABS = ["dashboard", "settings", "upstreams", "accounts", "requests", "earnings"]
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('body *')].filter((e) => {
    const box = e.getBoundingClientRect();
    return box.width > 0 && box.right > width + 1 && !e.closest('.scroll');
  });
  return {scroll: document.documentElement.scrollWidth, width,
          wide: wide.slice(0, 5).map((e) => e.tagName + '#' + e.id + '.' + e.className)};
}"""


@pytest.fixture
def layout_node(make_node: Callable[..., NodeHandle], mint: Any) -> NodeHandle:
    node = make_node(node={"admin_password": PASSWORD}, cashu={"mints": [mint.url]})
    node.new_key(5_000_000)  # an account, so the tables have a row
    return node


@pytest.mark.parametrize("width", [1280, 420])
async def test_every_tab_fits_the_width_without_scrolling_sideways(
    chromium: Any,  # noqa: F811
    layout_node: NodeHandle,
    width: int,
) -> None:
    page = await admin_page(chromium, layout_node.url, width)
    for tab in TABS:
        await page.click(f"nav button[data-tab={tab}]")
        await page.wait_for_load_state("networkidle")
        await shot(page, f"admin-{tab}-{width}")
        measured = await page.evaluate(OVERFLOW)
        assert measured["scroll"] <= measured["width"], (tab, measured)
        assert measured["wide"] == [], (tab, measured)
    assert page.errors == []
    await page.context.close()


async def test_settings_show_descriptions_units_choices_and_when_a_change_applies(
    chromium: Any,  # noqa: F811
    layout_node: NodeHandle,
) -> None:
    page = await admin_page(chromium, layout_node.url)
    await page.click("nav button[data-tab=settings]")
    fee = page.locator("label.setting:has(input[name='pricing.request_fee_msat'])")
    await fee.wait_for()
    description = PricingSection.model_fields["request_fee_msat"].description
    assert description and description in await fee.text_content()
    assert "msat" in await fee.locator(".unit").text_content()
    level = page.locator("select[name='log.level']")  # an enum is a select (file-only here)
    assert await level.locator("option").all_text_contents() == [
        "DEBUG",
        "INFO",
        "WARNING",
        "ERROR",
    ]
    assert await level.is_disabled()
    assert await page.locator("input[name='node.port']").is_disabled()
    per_minute = page.locator("label.setting:has(input[name='limits.per_minute'])")
    assert "applies at the next start" in await per_minute.text_content()

    await page.locator("input[name='limits.per_minute']").fill("77")
    await page.locator("input[name='node.name']").fill("Renamed")
    await page.click("#settings-save")
    status = page.locator("#settings-status")
    await page.wait_for_selector("#settings-status:has-text('next start')")
    assert (
        "limits.per_minute applies at the next start, the rest now" in await status.text_content()
    )
    await page.locator("input[name='node.name']").fill("Renamed again")
    await page.click("#settings-save")
    await page.wait_for_selector("#settings-status:has-text('saved and applied')")
    await shot(page, "admin-settings-described")
    assert page.errors == []


async def test_the_chart_has_axes_a_period_selector_and_a_tooltip_per_bucket(
    chromium: Any,  # noqa: F811
    layout_node: NodeHandle,
) -> None:
    key = layout_node.new_key(1_000_000)
    for _ in range(2):
        status, _, _ = await call(layout_node, "POST", "/v1/chat/completions", key, json=HELLO)
        assert status == 200
    page = await admin_page(chromium, layout_node.url)
    await page.wait_for_selector("#chart svg rect.bar")
    labels = await page.locator("#chart svg text.panel-label").all_text_contents()
    assert labels == ["requests", "revenue (sat)", "balances (sat)"]  # one scale each
    assert await page.locator("#chart svg text.tick").count() >= 3 * 3 + 2  # values and times
    tips = page.locator("#chart svg rect.hit title")
    assert await tips.count() == 24  # an hour each
    now = await tips.last.text_content()
    assert "requests: 2" in now and "revenue (sat): " in now and "balances (sat): " in now
    for button, title, buckets in (("168", "Last 7 days", 28), ("720", "Last 30 days", 30)):
        await page.click(f"#periods button[data-hours='{button}']")
        await page.wait_for_selector(f"#chart-title:has-text('{title}')")
        await until(page, f"document.querySelectorAll('#chart svg rect.hit').length === {buckets}")
        assert "requests: 2" in (await tips.last.text_content() or "")
    await shot(page, "admin-dashboard-30d")
    assert page.errors == []
