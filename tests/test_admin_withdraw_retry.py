"""The admin's earnings payout left in doubt (the mint goes quiet mid-payout): a retry with the
same Idempotency-Key, over the API or from the page, collects the first payout's token instead
of making a second one. A real mint behind a proxy that swallows its answers; real Chromium."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

import wallet as cashu
from tests.conftest import NodeHandle
from tests.support.admin_client import PASSWORD, AdminClient
from tests.support.browser import admin_page, chromium, shot  # noqa: F401 (chromium: a fixture)
from tests.support.proxy import MintProxy

HELLO = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
WITHDRAW = "/admin/api/earnings/withdraw"


@pytest.fixture
async def proxy(mint: Any) -> AsyncIterator[MintProxy]:
    proxy = await MintProxy(mint.url).start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def earning_node(
    make_node: Callable[..., NodeHandle], proxy: MintProxy, mint: Any, ref_wallet: Any
) -> NodeHandle:
    """A node behind the proxy that has earned 15 sat (3 requests at 5 sat) of a 100 sat token."""
    node = make_node(
        node={"admin_password": PASSWORD},
        cashu={"mints": [proxy.url], "mint_timeout_s": 1.0},
        pricing={"request_fee_msat": 5000},
    )
    token = cashu.parse_token(await ref_wallet.token(mint.url, 100))
    auth = {"Authorization": f"Bearer {cashu.serialize_v4(token.with_mint(proxy.url))}"}
    async with aiohttp.ClientSession() as s:
        for _ in range(3):
            async with s.post(node.url + "/v1/chat/completions", json=HELLO, headers=auth) as r:
                assert r.status == 200, await r.text()
    return node


async def in_doubt(client: AdminClient, proxy: MintProxy, headers: dict[str, str]) -> Any:
    """Withdraw 3 sat (the proofs held are 64 + 32 + 4: it needs a swap) as the mint goes quiet."""
    proxy.swallow = {"/v1/swap"}
    async with client.session.post(
        client.url + WITHDRAW, json={"amount": 3}, headers={"X-CSRF-Token": client.csrf, **headers}
    ) as resp:
        body = await resp.json()
        assert (resp.status, body["error"]["code"]) == (503, "mint_unavailable"), body
    proxy.swallow = set()
    return resp.headers


async def test_a_retry_with_the_same_key_collects_the_first_payout(
    earning_node: NodeHandle, proxy: MintProxy, ref_wallet: Any
) -> None:
    async with AdminClient(earning_node.url) as client:
        await client.login()
        await in_doubt(client, proxy, {"Idempotency-Key": "payout-1"})
        retry = {"X-CSRF-Token": client.csrf, "Idempotency-Key": "payout-1"}
        tokens = []
        for _ in range(2):  # the retry settles the first payout; the next one finds it done
            async with client.session.post(
                client.url + WITHDRAW, json={"amount": 3}, headers=retry
            ) as resp:
                assert resp.status == 200, await resp.text()
                tokens.append((await resp.json())["cashu_token"])
        assert tokens[0] == tokens[1]
        assert await ref_wallet.receive(tokens[0]) == 3
        earnings = await client.get("/admin/api/earnings")
        assert [p["amount_sat"] for p in earnings["payouts"]] == [3]
        assert earnings["withdrawable_sat"] == 12
    earning_node.assert_clean()


async def test_a_keyless_payout_in_doubt_names_its_key(
    earning_node: NodeHandle, proxy: MintProxy, ref_wallet: Any
) -> None:
    async with AdminClient(earning_node.url) as client:
        await client.login()
        headers = await in_doubt(client, proxy, {})
        key = headers["Idempotency-Key"]
        retry = {"X-CSRF-Token": client.csrf, "Idempotency-Key": key}
        async with client.session.post(
            client.url + WITHDRAW, json={"amount": 3}, headers=retry
        ) as resp:
            assert resp.status == 200, await resp.text()
            paid = await resp.json()
        assert await ref_wallet.receive(paid["cashu_token"]) == 3
        earnings = await client.get("/admin/api/earnings")
        assert [p["amount_sat"] for p in earnings["payouts"]] == [3]
        assert earnings["withdrawable_sat"] == 12
    earning_node.assert_clean()


async def test_the_page_retries_under_the_same_key(
    chromium: Any,  # noqa: F811
    earning_node: NodeHandle,
    proxy: MintProxy,
    ref_wallet: Any,
) -> None:
    page = await admin_page(chromium, earning_node.url)
    await page.click("nav button[data-tab=earnings]")
    await page.wait_for_selector("#withdrawable:has-text('15')")
    await page.fill("#withdraw-amount", "3")
    proxy.swallow = {"/v1/swap"}
    await page.click("#withdraw-button")
    await page.wait_for_selector("[data-error=withdraw]:has-text('mint stopped answering')")
    await shot(page, "admin-withdraw-in-doubt")
    proxy.swallow = set()
    await page.click("#withdraw-button")  # the operator tries again, same amount
    await page.wait_for_selector("#withdraw-token:not([hidden])")
    first = await page.locator("#withdraw-token").input_value()
    assert await ref_wallet.receive(first) == 3
    await page.wait_for_selector("#payouts-table tbody tr")
    assert await page.locator("#payouts-table tbody tr").count() == 1
    await page.click("#withdraw-button")  # after a success, a new withdraw is a new payout
    await page.wait_for_selector("#payouts-table tbody tr:nth-child(2)")  # shown after the token
    assert await page.locator("#withdraw-token").input_value() != first
    assert await ref_wallet.receive(await page.locator("#withdraw-token").input_value()) == 3
    async with AdminClient(earning_node.url) as client:
        await client.login()
        earnings = await client.get("/admin/api/earnings")
        assert [p["amount_sat"] for p in earnings["payouts"]] == [3, 3]
        assert earnings["withdrawable_sat"] == 9
    assert page.errors == []
    earning_node.assert_clean()


async def withdraw(client: AdminClient, body: dict[str, Any], key: str) -> tuple[int, Any]:
    headers = {"X-CSRF-Token": client.csrf, "Idempotency-Key": key}
    async with client.session.post(client.url + WITHDRAW, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_withdraws_at_once_pay_once_per_key_and_never_past_earnings(
    earning_node: NodeHandle, ref_wallet: Any
) -> None:
    async with AdminClient(earning_node.url) as client:
        await client.login()
        # one key, twice at once (a double submit): one payout; the other waits or gets it
        same = await asyncio.gather(*(withdraw(client, {"amount": 3}, "k") for _ in range(2)))
        assert {s for s, _ in same} <= {200, 409}, same
        tokens = {a["cashu_token"] for s, a in same if s == 200}
        status, again = await withdraw(client, {"amount": 3}, "k")
        assert status == 200 and tokens <= {again["cashu_token"]}
        assert await ref_wallet.receive(again["cashu_token"]) == 3
        # two keys, each asking for all that is left: one is paid, the other refused
        both = await asyncio.gather(withdraw(client, {}, "all-1"), withdraw(client, {}, "all-2"))
        paid = [a for s, a in both if s == 200]
        assert len(paid) == 1, both
        assert paid[0]["amount"] == 12 and await ref_wallet.receive(paid[0]["cashu_token"]) == 12
        earnings = await client.get("/admin/api/earnings")
        assert sorted(p["amount_sat"] for p in earnings["payouts"]) == [3, 12]
        assert earnings["withdrawable_sat"] == 0
    earning_node.assert_clean()
