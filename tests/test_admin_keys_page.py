"""Keys from the admin page, in real Chromium, and their admin API over HTTP: create a key
funded with operator credit (spend-only), add credit once per Idempotency-Key, set its limits
and expiry, revoke it; each checked by using the key against the node."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from node.money.ledger import hash_key
from tests.conftest import NodeHandle
from tests.support.admin_client import PASSWORD, AdminClient
from tests.support.browser import admin_page, chromium, shot  # noqa: F401 (chromium: a fixture)
from tests.support.money import call

HELLO = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


@pytest.fixture
def keys_node(make_node: Callable[..., NodeHandle]) -> NodeHandle:
    return make_node(node={"admin_password": PASSWORD})


async def ask(node: NodeHandle, key: str) -> tuple[int, Any]:
    status, _, body = await call(node, "POST", "/v1/chat/completions", key, json=HELLO)
    return status, body


async def test_create_fund_limit_and_revoke_a_key_from_the_page(
    chromium: Any,  # noqa: F811
    keys_node: NodeHandle,
) -> None:
    page = await admin_page(chromium, keys_node.url)
    await page.click("nav button[data-tab=accounts]")
    form = "#key-create"
    await page.fill(f"{form} input[name=name]", "team")
    await page.fill(f"{form} input[name=credit]", "50")
    await page.fill(f"{form} input[name=spend_limit]", "30")
    await page.select_option(f"{form} select[name=limit_period]", "day")
    await page.fill(f"{form} input[name=expires_at]", "2099-01-02T03:04")
    await page.click(f"{form} button[type=submit]")
    await page.wait_for_selector("#key-made:not([hidden])")
    key = await page.locator("#key-secret").input_value()
    assert key.startswith("sk-")
    await page.wait_for_selector("#key-state:has-text('30 sat per day')")
    state = await page.locator("#key-state").text_content() or ""
    assert "balance 50 sat, of which operator credit 50 sat" in state and "expires" in state
    account = keys_node.ledger.find(hash_key(key))
    assert account is not None and account.balance_msat == account.credit_msat == 50_000
    status, _ = await ask(keys_node, key)
    assert status == 200
    await shot(page, "admin-keys-created")

    before = keys_node.ledger.get(account.id)
    await page.fill("#key-fund input[name=amount]", "20")
    await page.click("#key-fund button")
    await page.wait_for_selector("#key-status:has-text('funded')")
    after = keys_node.ledger.get(account.id)
    assert after.balance_msat == before.balance_msat + 20_000
    assert after.credit_msat == before.credit_msat + 20_000
    await page.wait_for_selector(f"#accounts-table tr[data-id='{account.id}']")

    await page.fill("#key-limits input[name=spend_limit]", "0")  # nothing more to spend
    await page.click("#key-limits button")
    await page.wait_for_selector("#key-status:has-text('limits saved')")
    status, body = await ask(keys_node, key)
    assert status in (402, 403, 429), body
    await page.fill("#key-limits input[name=spend_limit]", "")
    await page.fill("#key-limits input[name=expires_at]", "2001-01-01T00:00")  # expired
    await page.click("#key-limits button")
    await page.wait_for_selector("#key-state:has-text('no limit')")
    status, body = await ask(keys_node, key)
    assert status == 401 and "expired" in body["error"]["message"], body
    await page.fill("#key-limits input[name=expires_at]", "")
    await page.click("#key-limits button")
    await page.wait_for_selector("#key-state:has-text('never expires')")
    assert (await ask(keys_node, key))[0] == 200

    await page.click("#key-revoke")  # the confirm() is accepted by new_page
    await page.wait_for_selector("#key-state:has-text('REVOKED')")
    status, body = await ask(keys_node, key)
    assert status == 401 and body["error"]["code"] == "key_revoked"
    await shot(page, "admin-keys-revoked")
    assert page.errors == []


async def test_operator_credit_over_http_is_spend_only_idempotent_and_checked(
    keys_node: NodeHandle,
) -> None:
    async with AdminClient(keys_node.url) as admin:
        assert (await admin.login())[0] == 200
        made = await admin.send("POST", "/admin/api/keys", {"credit_msat": 10_000}, status=201)
        key, account_id = made["key"], made["account_id"]
        url = f"{keys_node.url}/admin/api/keys/{account_id}/credit"
        headers = {"X-CSRF-Token": admin.csrf, "Idempotency-Key": "fund-once"}

        async def fund(amount: Any, extra: dict[str, str] | None = None) -> tuple[int, Any]:
            async with admin.session.post(
                url, json={"amount_msat": amount}, headers=extra or headers
            ) as r:
                return r.status, await r.json()

        results = await asyncio.gather(*(fund(5_000) for _ in range(6)))  # one retry storm
        assert {s for s, _ in results} == {200}
        assert sum(1 for _, b in results if b["credited"]) == 1
        account = keys_node.ledger.get(account_id)
        assert account.balance_msat == account.credit_msat == 15_000
        for bad in (0, -1, "5", 1.5, True, None, 2**62 - 1):
            status, body = await fund(bad, {**headers, "Idempotency-Key": f"bad-{bad}"})
            assert status == 400 and body["error"]["param"] == "amount_msat", (bad, body)
        status, body = await fund(5_000, {"Idempotency-Key": "no-csrf"})
        assert status == 403
        async with admin.session.post(
            f"{keys_node.url}/admin/api/keys/999999/credit",
            json={"amount_msat": 1},
            headers=headers,
        ) as r:
            assert r.status == 404
        status, _, made = await call(keys_node, "POST", "/v1/keys", key, json={"name": "child"})
        assert status == 201
        child = keys_node.ledger.find(hash_key(made["api_key"]))
        assert child is not None
        async with admin.session.post(
            f"{keys_node.url}/admin/api/keys/{child.id}/credit",
            json={"amount_msat": 1},
            headers={**headers, "Idempotency-Key": "child"},
        ) as r:
            assert r.status == 400  # a sub-key spends its parent's balance
        for bad_body in ({"credit_msat": -5}, {"credit_msat": "1"}, {"limit_period": "yearly"}):
            status, body, _ = await admin.call("POST", "/admin/api/keys", bad_body)
            assert status == 400, bad_body
        assert keys_node.ledger.get(account_id).balance_msat == 15_000  # nothing changed
        async with aiohttp.ClientSession() as anonymous, anonymous.post(url, json={}) as r:
            assert r.status == 401

    # spend-only: the key spends its credit, but cannot withdraw it as ecash
    assert (await ask(keys_node, key))[0] == 200
    status, _, body = await call(keys_node, "POST", "/v1/wallet/withdraw", key, json={})
    assert status in (400, 403), body
    keys_node.assert_clean()
