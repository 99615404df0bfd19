"""The admin page's QR encoder (admin_ui/static/admin_qr.js), run in real Chromium, against the
`qrcode` package as the reference: the same modules for every mask and versions small to large;
and the withdrawn token is shown as a QR code that holds the token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import qrcode
import qrcode.util

from tests.conftest import NodeHandle
from tests.support.admin_client import PASSWORD
from tests.support.browser import admin_page, chromium, new_page, shot, until  # noqa: F401 (chromium: a fixture)
from tests.support.money import call

HELLO = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}

TEXTS = ["a", "cashuB" + "x" * 40, "hello ✓ wörld " * 12, "cashuBo2F0gaJhaUgA" * 40]
TEXTS += ["q" * 1500, "y" * 2330]  # version 32 (its own alignment step) and 40


def reference(text: str, version: int, mask: int | None) -> list[list[bool]]:
    code = qrcode.QRCode(
        version=version,
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        mask_pattern=mask,
        border=0,
    )
    code.add_data(qrcode.util.QRData(text.encode(), mode=qrcode.util.MODE_8BIT_BYTE))
    code.make(fit=False)
    return [[bool(c) for c in row] for row in code.modules]


def smallest_version(text: str) -> int:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(qrcode.util.QRData(text.encode(), mode=qrcode.util.MODE_8BIT_BYTE))
    return int(code.best_fit())


@pytest.fixture
def qr_node(make_node: Callable[..., NodeHandle], mint: Any) -> NodeHandle:
    return make_node(
        node={"admin_password": PASSWORD},
        cashu={"mints": [mint.url]},
        pricing={"request_fee_msat": 5000},
    )


async def test_the_encoder_matches_the_reference_for_every_mask(
    chromium: Any,  # noqa: F811
    qr_node: NodeHandle,
) -> None:
    page = await new_page(chromium)
    await page.goto(qr_node.url + "/admin")
    await until(page, "typeof qrMatrix === 'function'")
    for text in TEXTS:
        ours = await page.evaluate("(t) => qrMatrix(t)", text)
        version = (len(ours) - 17) // 4
        assert version == smallest_version(text), text
        for mask in range(8):
            got = await page.evaluate("([t, m]) => qrMatrix(t, m)", [text, mask])
            assert got == reference(text, version, mask), (text[:20], version, mask)
    assert page.errors == []


async def test_the_withdrawn_token_is_shown_as_a_qr_code(
    chromium: Any,  # noqa: F811
    qr_node: NodeHandle,
    mint: Any,
    ref_wallet: Any,
) -> None:
    token = await ref_wallet.token(mint.url, 100)
    for _ in range(2):
        status, _, _ = await call(qr_node, "POST", "/v1/chat/completions", token, json=HELLO)
        assert status == 200
    page = await admin_page(chromium, qr_node.url)
    await page.click("nav button[data-tab=earnings]")
    await page.wait_for_selector("#withdrawable:has-text('10')")
    await page.click("#withdraw-button")
    await page.wait_for_selector("#withdraw-qr svg path")
    cashu = await page.locator("#withdraw-token").input_value()
    modules = int(await page.locator("#withdraw-qr svg").get_attribute("data-modules") or 0)
    version = (modules - 17) // 4
    assert version == smallest_version(cashu)
    drawn = await page.evaluate("(t) => qrMatrix(t)", cashu)
    assert drawn in [reference(cashu, version, m) for m in range(8)]  # holds the token
    await shot(page, "admin-earnings-qr")
    assert await ref_wallet.receive(cashu) == 10
    assert page.errors == []
