"""One Idempotency-Key names one request: a retry of the same payout gets the first answer
again, while the same key sent with another amount, invoice, address amount or mint is a 422
(`idempotency_key_mismatch`) that takes nothing, never the first payout passed off as the new
one. Real nodes, real Nutshell mints, a local Lightning-address host."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import NodeHandle
from tests.support.admin_client import AdminClient
from tests.support.lnurl_server import LnurlHost
from tests.support.mints import MintInfo
from tests.support.money import call
from tests.support.pg import BOTH_BACKENDS
from tests.test_lightning import key_by_invoice, payee_invoice
from tests.test_lightning_address import node_with_earnings

pytestmark = BOTH_BACKENDS

WITHDRAW = "/v1/wallet/withdraw"
MISMATCH = "idempotency_key_mismatch"


@pytest.fixture
def host() -> Iterator[LnurlHost]:
    server = LnurlHost().start()
    yield server
    server.stop()


@pytest.fixture
def ln_node(make_node: Callable[..., NodeHandle], mint: MintInfo, fee_mint: MintInfo) -> NodeHandle:
    return make_node(
        cashu={"mints": [mint.url, fee_mint.url]},
        lightning={"min_sats": 1, "watch_interval_s": 0.2, "lnurl_allow_local": True},
    )


async def withdraw(node: NodeHandle, key: str, idem: str, body: dict[str, Any]) -> Any:
    return await call(node, "POST", WITHDRAW, key, headers={"Idempotency-Key": idem}, json=body)


def refused(answer: tuple[int, Any, Any]) -> None:
    status, _, body = answer
    assert status == 422 and body["error"]["code"] == MISMATCH, body
    assert body["error"]["type"] == "invalid_request_error"


async def test_a_token_withdrawal_retried_with_another_amount_or_mint_is_refused(
    ln_node: NodeHandle, mint: MintInfo, fee_mint: MintInfo
) -> None:
    key = await key_by_invoice(ln_node, 300)
    status, _, first = await withdraw(ln_node, key, "tok-1", {"amount": 10})
    assert status == 200 and first["amount"] == 10, first
    after = ln_node.balance(key)
    same = [{"amount": 10}, {"amount": 10, "mint": first["mint"] + "/"}]
    for body in same:  # the same request (the mint as another spelling of its URL)
        status, _, again = await withdraw(ln_node, key, "tok-1", body)
        assert status == 200 and again == first, (body, again)
    for body in ({"amount": 40}, {"amount": 10, "mint": fee_mint.url}):
        refused(await withdraw(ln_node, key, "tok-1", body))
    assert ln_node.balance(key) == after  # nothing taken
    status, _, other = await withdraw(ln_node, key, "tok-2", {"amount": 40})
    assert status == 200 and other["amount"] == 40  # a new key: a new payout
    ln_node.assert_clean()


async def test_an_invoice_payment_retried_with_another_invoice_or_mint_is_refused(
    ln_node: NodeHandle, make_node: Callable[..., NodeHandle], fee_mint: MintInfo
) -> None:
    key = await key_by_invoice(ln_node, 300)
    payee = make_node(cashu={"mints": [fee_mint.url]}, lightning={"min_sats": 1})
    bolt11, another = await payee_invoice(payee, 20), await payee_invoice(payee, 40)
    status, _, first = await withdraw(ln_node, key, "ln-1", {"invoice": bolt11})
    assert status == 200 and first["status"] == "paid", first
    after = ln_node.balance(key)
    for body in ({"invoice": bolt11}, {"invoice": bolt11.upper()}):
        status, _, again = await withdraw(ln_node, key, "ln-1", body)
        assert status == 200 and again == first, again
    refused(await withdraw(ln_node, key, "ln-1", {"invoice": another}))
    refused(await withdraw(ln_node, key, "ln-1", {"invoice": bolt11, "mint": fee_mint.url}))
    assert ln_node.balance(key) == after
    status, _, paid = await withdraw(ln_node, key, "ln-2", {"invoice": another})
    assert status == 200 and paid["amount"] == 40, paid
    ln_node.assert_clean()


async def test_an_address_payment_retried_with_another_amount_is_refused(
    ln_node: NodeHandle, host: LnurlHost
) -> None:
    key = await key_by_invoice(ln_node, 300)
    body = {"lightning_address": host.address("alice"), "amount": 50}
    status, _, first = await withdraw(ln_node, key, "addr-1", body)
    assert status == 200 and first["amount"] == 50, first
    after = ln_node.balance(key)
    assert (await withdraw(ln_node, key, "addr-1", body))[2] == first
    refused(await withdraw(ln_node, key, "addr-1", {**body, "amount": 80}))
    assert ln_node.balance(key) == after and host.asked == [50_000]  # nothing fetched or paid
    ln_node.assert_clean()


async def test_the_operators_credit_and_earnings_under_a_reused_key_are_refused(
    make_node: Callable[..., NodeHandle], mint: MintInfo, host: LnurlHost
) -> None:
    node, _ = await node_with_earnings(make_node, mint)
    async with AdminClient(node.url) as admin:
        await admin.login()
        made = await admin.send("POST", "/admin/api/keys", {"credit_msat": 1_000}, status=201)

        async def post(path: str, idem: str, body: dict[str, Any]) -> tuple[int, Any, Any]:
            status, answer, resp = await admin.call(
                "POST", path, body, more={"Idempotency-Key": idem}
            )
            return status, resp.headers, answer

        credit = f"/admin/api/keys/{made['account_id']}/credit"
        assert (await post(credit, "fund-1", {"amount_msat": 5_000}))[0] == 200
        again = await post(credit, "fund-1", {"amount_msat": 5_000})
        assert again[0] == 200 and again[2]["credited"] is False, again
        refused(await post(credit, "fund-1", {"amount_msat": 9_000}))
        assert node.ledger.get(made["account_id"]).balance_msat == 6_000

        earnings = "/admin/api/earnings/withdraw"
        earned = (await admin.get("/admin/api/earnings"))["withdrawable_sat"]
        status, _, paid = await post(earnings, "earn-1", {"amount": 5})
        assert status == 200 and paid["amount"] == 5, paid
        assert (await post(earnings, "earn-1", {"amount": 5}))[2] == paid
        refused(await post(earnings, "earn-1", {"amount": 7}))
        address = {"lightning_address": host.address("operator"), "amount": 10}
        status, _, sent = await post(earnings, "earn-2", address)
        assert status == 200 and sent["amount"] == 10, sent
        refused(await post(earnings, "earn-2", {**address, "amount": 12}))
        left = (await admin.get("/admin/api/earnings"))["withdrawable_sat"]
        assert left == earned - 5 - paid["fee_sat"] - 10 - sent["fee_sat"]
    node.assert_clean()


async def test_one_key_sent_at_once_with_two_amounts_pays_one_of_them_once(
    ln_node: NodeHandle,
) -> None:
    """Two withdrawals under one Idempotency-Key, sent together with different amounts: one is
    paid, the other refused (422, or 409 while the first is under way), and the account is
    debited for the one paid alone."""
    key = await key_by_invoice(ln_node, 300)
    before = ln_node.balance(key)
    answers = await asyncio.gather(
        withdraw(ln_node, key, "race-1", {"amount": 10}),
        withdraw(ln_node, key, "race-1", {"amount": 40}),
    )
    paid = [body for status, _, body in answers if status == 200]
    others = [(status, body) for status, _, body in answers if status != 200]
    assert len(paid) == 1 and len(others) == 1, answers
    assert others[0][0] in (409, 422), others
    fee = paid[0].get("fee_sat", 0)
    assert ln_node.balance(key) == before - (paid[0]["amount"] + fee) * 1000
    ln_node.assert_clean()
