"""The admin's money, page and login at their edges: parallel guesses, fee mints, double clicks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp

from node.admin.auth import FREE_FAILURES
from tests.conftest import NodeHandle
from tests.support.admin_client import PASSWORD, AdminClient
from tests.support.browser import admin_page, chromium  # noqa: F401 (chromium: a fixture)

FEE_MSAT = 5000
HELLO = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


async def chat(node: NodeHandle, key: str) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        aiohttp.ClientSession() as s,
        s.post(node.url + "/v1/chat/completions", json=HELLO, headers=headers) as r,
    ):
        assert r.status == 200, await r.text()


async def test_a_burst_of_parallel_wrong_logins_is_throttled_like_a_sequence(
    make_node: Callable[..., NodeHandle],
) -> None:
    """Every guess in flight passed the lockout check before the first failure was counted."""
    node = make_node(node={"admin_password": PASSWORD})
    async with AdminClient(node.url) as client:
        answers = await asyncio.gather(*(client.login("wrong") for _ in range(24)))
    guessed = sum(1 for status, _ in answers if status == 401)
    assert guessed <= FREE_FAILURES + 1, [status for status, _ in answers]
    assert {status for status, _ in answers} <= {401, 429}


async def test_withdrawing_all_earnings_at_a_fee_mint_leaves_the_node_solvent(
    make_node: Callable[..., NodeHandle], fee_mint: Any, ref_wallet: Any
) -> None:
    """The payout's mint fees come out of the node's proofs: they must fit in the earnings."""
    node = make_node(
        node={"admin_password": PASSWORD},
        cashu={"mints": [fee_mint.url]},
        pricing={"request_fee_msat": FEE_MSAT},
    )
    token = await ref_wallet.token(fee_mint.url, 100)
    for _ in range(3):
        await chat(node, token)
    async with AdminClient(node.url) as client:
        await client.login()
        before = await client.get("/admin/api/money")
        assert before["withdrawable_sat"] > 0, before
        paid = await client.send("POST", "/admin/api/earnings/withdraw", {})
        # a token of the amount; its receiver pays its own fee, the payout's came out of earnings
        assert paid["amount"] + paid["fee_sat"] <= before["withdrawable_sat"]
        assert 0 < await ref_wallet.receive(paid["cashu_token"]) <= paid["amount"]
        after = await client.get("/admin/api/money")
        spent = (paid["amount"] + paid["fee_sat"]) * 1000
        assert after["assets_total_msat"] == before["assets_total_msat"] - spent
        assert after["assets_total_msat"] >= after["liabilities_msat"], after
        assert after["solvent"] is True
        # and a withdraw named explicitly cannot go past the fees either
        status, body, _ = await client.call(
            "POST", "/admin/api/earnings/withdraw", {"amount": before["withdrawable_sat"]}
        )
        assert status == 400 and body["error"]["code"] == "exceeds_earnings"


async def test_a_double_click_on_withdraw_pays_out_once(
    chromium: Any,  # noqa: F811
    make_node: Callable[..., NodeHandle],
    mint: Any,
    ref_wallet: Any,
) -> None:
    """Two payouts were made and the page showed only the second token: the first was lost."""
    node = make_node(
        node={"admin_password": PASSWORD},
        cashu={"mints": [mint.url]},
        pricing={"request_fee_msat": FEE_MSAT},
    )
    token = await ref_wallet.token(mint.url, 63)  # several proofs: a payout leaves some free
    for _ in range(3):
        await chat(node, token)
    page = await admin_page(chromium, node.url)
    await page.click("nav button[data-tab=earnings]")
    await page.wait_for_selector("#withdrawable:has-text('15')")
    await page.fill("#withdraw-amount", "2")
    await page.dblclick("#withdraw-button")
    await page.wait_for_selector("#withdraw-token:not([hidden])")
    await page.wait_for_timeout(1000)  # the second click's payout, if any, lands meanwhile
    async with AdminClient(node.url) as client:
        await client.login()
        earnings = await client.get("/admin/api/earnings")
    assert [p["amount_sat"] for p in earnings["payouts"]] == [2]
    assert earnings["withdrawable_sat"] == 13
    assert page.errors == []
