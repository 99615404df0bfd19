"""A model edited in place on the upstreams page: its prices and its other [[models]] fields,
saved through the admin's settings save (validated, applied live, persisted), a refused value
marked at its field. Over HTTP and in real Chromium."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from node.settings.catalogue import ModelSection
from tests.conftest import NodeHandle
from tests.support.admin_client import PASSWORD, AdminClient
from tests.support.browser import admin_page, chromium, shot  # noqa: F401 (chromium: a fixture)
from tests.test_admin_layout import OVERFLOW


@pytest.fixture
def admin_node(make_node: Callable[..., NodeHandle]) -> NodeHandle:
    return make_node(node={"admin_password": PASSWORD})


async def model(node: NodeHandle, model_id: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.get(f"{node.url}/v1/models/{model_id}") as r:
        return r.status, await r.json()


async def test_every_field_is_described_and_an_edit_applies_at_once(
    admin_node: NodeHandle,
) -> None:
    async with AdminClient(admin_node.url) as admin:
        await admin.login()
        fields = (await admin.get("/admin/api/models/fields"))["fields"]
        assert [f["key"] for f in fields] == list(ModelSection.model_fields)
        assert all(f["description"] for f in fields)
        price = next(f for f in fields if f["key"] == "cached_input_usd_per_mtok")
        assert price["unit"] == "USD per million tokens" and price["optional"] is True
        change = {
            "input_usd_per_mtok": 5,
            "output_usd_per_mtok": 6.5,
            "aliases": ["tm"],
            "description": "edited in place",
            "max_output_tokens": 700,
        }
        listing = await admin.send("PATCH", "/admin/api/models/test-model", change)
        entry = next(m for m in listing["models"] if m["id"] == "test-model")
        assert {k: entry[k] for k in change} == change
    status, body = await model(admin_node, "test-model")
    assert status == 200 and body["pricing"]["prompt"] == 0.000005
    assert body["pricing"]["completion"] == 0.0000065 and body["description"] == "edited in place"
    status, body = await model(admin_node, "tm")  # the alias, served at once
    assert status == 200 and body["id"] == "test-model"


@pytest.mark.parametrize(
    ("change", "param", "said"),
    [
        ({"input_usd_per_mtok": -1}, "input_usd_per_mtok", "greater than or equal to 0"),
        ({"output_usd_per_mtok": "cheap"}, "output_usd_per_mtok", "valid number"),
        ({"max_output_tokens": 0}, "max_output_tokens", "greater than"),
        ({"input_usd": 1}, "input_usd", "Extra inputs are not permitted"),
        ({"upstreams": ["nowhere"]}, "", "nowhere"),
    ],
)
async def test_a_bad_value_is_refused_clearly_and_changes_nothing(
    admin_node: NodeHandle, change: dict[str, Any], param: str, said: str
) -> None:
    _, before = await model(admin_node, "test-model")
    async with AdminClient(admin_node.url) as admin:
        await admin.login()
        status, body, _ = await admin.call("PATCH", "/admin/api/models/test-model", change)
    assert status == 400, body
    error = body["error"]
    assert said in error["message"] and error["param"].endswith(param)
    assert error["param"].startswith("models.")
    assert (await model(admin_node, "test-model"))[1] == before


@pytest.mark.parametrize("width", [1280, 420])
async def test_a_model_is_edited_in_place_on_the_page(
    chromium: Any,  # noqa: F811
    admin_node: NodeHandle,
    width: int,
) -> None:
    page = await admin_page(chromium, admin_node.url, width)
    await page.click("nav button[data-tab=upstreams]")
    row = page.locator("#models-table tr[data-model='test-model']")
    await row.locator("button:has-text('Edit')").click()
    editor = page.locator("#models-table form.model-editor[data-model='test-model']")
    await editor.wait_for()
    described = ModelSection.model_fields["reasoning_usd_per_mtok"].description
    assert described and described in (await editor.text_content() or "")
    assert await editor.locator("input[name=id]").get_attribute("readonly") is not None
    measured = await page.evaluate(OVERFLOW)
    assert measured["scroll"] <= measured["width"] and measured["wide"] == [], measured
    await shot(page, f"admin-model-editor-{width}")

    await editor.locator("input[name=input_usd_per_mtok]").fill("-1")
    await editor.locator("button[type=submit]").click()
    alert = editor.locator("[data-error=model-edit]")
    await page.wait_for_selector("[data-error=model-edit]:has-text('greater than or equal to 0')")
    assert "input_usd_per_mtok" in (await alert.text_content() or "")
    bad = editor.locator("input[name=input_usd_per_mtok]")
    assert await bad.get_attribute("aria-invalid") == "true"
    assert "invalid" in (await bad.get_attribute("class") or "")
    assert (await model(admin_node, "test-model"))[1]["pricing"]["prompt"] == 0.000001

    await bad.fill("4")
    await editor.locator("input[name=output_usd_per_mtok]").fill("8")
    await editor.locator("input[name=aliases]").fill("tm, tm2")
    await editor.locator("select[name=completions]").select_option("false")
    await editor.locator("button[type=submit]").click()
    await page.wait_for_selector("#model-status:has-text('saved and applied')")
    assert await editor.count() == 0  # the row again, with the new prices
    cells = await row.locator("td").all_text_contents()
    assert cells[3:5] == ["4", "8"]
    status, body = await model(admin_node, "tm2")
    assert status == 200 and body["pricing"]["prompt"] == 0.000004
    assert page.errors == []
    await page.context.close()
