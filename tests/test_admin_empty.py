"""A new node's admin page in real Chromium: every tab says what is missing and how it comes,
rather than showing blank tables (empty states), without console errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conftest import NodeHandle
from tests.support.admin_client import PASSWORD
from tests.support.browser import admin_page, chromium, shot  # noqa: F401 (chromium: a fixture)

EMPTY = {
    "dashboard": [("#chart-empty", "No paid request in this period")],
    "upstreams": [("#models-table", "No model priced yet")],
    "accounts": [("#accounts-table", "No account yet")],
    "requests": [
        ("#requests-table", "No requests recorded yet"),
        ("#by-model-table", "Nothing to break down yet"),
    ],
    "earnings": [("#payouts-table", "No withdrawal yet")],
}


async def test_every_tab_of_a_new_node_shows_an_empty_state(
    chromium: Any,  # noqa: F811
    make_node: Callable[..., NodeHandle],
) -> None:
    node = make_node(node={"admin_password": PASSWORD}, models=[])
    page = await admin_page(chromium, node.url)
    for tab, spots in EMPTY.items():
        await page.click(f"nav button[data-tab={tab}]")
        for selector, said in spots:
            shown = page.locator(f"{selector}:visible:has-text('{said}')")
            await shown.wait_for()
        await shot(page, f"admin-empty-{tab}")
    assert page.errors == []
