"""Withdrawing to a Lightning address (LNURL-pay, LUD-06/16) from a local address host: the
node fetches the invoice for the amount, checks its amount and description hash, and pays it
once per Idempotency-Key; a host on a private address is refused unless the operator allows
it; every failure is a clear error that takes nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import NodeHandle
from tests.support.admin_client import PASSWORD, AdminClient
from tests.support.lnurl_server import LnurlHost
from tests.support.mints import MintInfo, RefWallet
from tests.support.money import call
from tests.support.sdk import async_openai
from tests.test_lightning import HELLO, key_by_invoice
from wallet import bech32

WITHDRAW = "/v1/wallet/withdraw"


@pytest.fixture
def host() -> Iterator[LnurlHost]:
    server = LnurlHost().start()
    yield server
    server.stop()


@pytest.fixture
def ln_node(make_node: Callable[..., NodeHandle], mint: MintInfo) -> NodeHandle:
    return make_node(
        cashu={"mints": [mint.url]},
        lightning={"watch_interval_s": 0.2, "lnurl_allow_local": True},
    )


async def node_with_earnings(
    make_node: Callable[..., NodeHandle], mint: MintInfo
) -> tuple[NodeHandle, str]:
    """A node with an admin password whose operator has earned 60 sat or more (three requests
    at a 20 sat request fee, paid by a key bought with a Lightning invoice), and that key."""
    node = make_node(
        node={"admin_password": PASSWORD},
        cashu={"mints": [mint.url]},
        pricing={"request_fee_msat": 20_000},
        lightning={"watch_interval_s": 0.2, "lnurl_allow_local": True},
    )
    key = await key_by_invoice(node, 200)
    api = async_openai(f"{node.url}/v1", key)
    for _ in range(3):
        await api.chat.completions.create(**HELLO, max_tokens=5)
    return node, key


async def test_withdraw_to_a_lightning_address_pays_the_amount_once(
    ln_node: NodeHandle, host: LnurlHost
) -> None:
    key = await key_by_invoice(ln_node, 400)
    body = {"lightning_address": host.address("alice"), "amount": 150}
    headers = {"Idempotency-Key": "address-1"}
    status, _, paid = await call(ln_node, "POST", WITHDRAW, key, headers=headers, json=body)
    assert status == 200, paid
    assert paid["status"] == "paid" and paid["amount"] == 150
    assert host.asked == [150_000]
    assert 0 <= paid["fee_sat"] < paid["fee_reserve_sat"]  # the unused reserve came back
    assert ln_node.balance(key) == (400 - 150 - paid["fee_sat"]) * 1000
    again = await call(ln_node, "POST", WITHDRAW, key, headers=headers, json=body)
    assert again[0] == 200 and again[2] == paid and host.asked == [150_000]  # paid once
    assert ln_node.balance(key) == (400 - 150 - paid["fee_sat"]) * 1000
    ln_node.assert_clean()


async def test_a_bad_address_or_a_lying_host_takes_nothing(
    ln_node: NodeHandle, host: LnurlHost, make_node: Callable[..., NodeHandle], mint: MintInfo
) -> None:
    key = await key_by_invoice(ln_node, 300)
    cases = [
        ({"lightning_address": host.address("liar"), "amount": 10}, 502, "invoice_amount_mismatch"),
        (
            {"lightning_address": host.address("forger"), "amount": 10},
            502,
            "invoice_description_mismatch",
        ),
        ({"lightning_address": host.address("broken"), "amount": 10}, 502, "lnurl_failed"),
        ({"lightning_address": "bob@127.0.0.1:1", "amount": 10}, 502, "lnurl_unreachable"),
        ({"lightning_address": "not an address", "amount": 10}, 400, None),
        ({"lightning_address": host.address("alice")}, 400, None),
        ({"lightning_address": host.address("alice"), "amount": 301}, 402, None),
    ]
    for body, want, code in cases:
        status, _, answer = await call(ln_node, "POST", WITHDRAW, key, json=body)
        assert status == want, (body, answer)
        assert code is None or answer["error"]["code"] == code, answer
    assert ln_node.balance(key) == 300_000
    # with the default setting, a host on a loopback address is refused before any fetch
    strict = make_node(cashu={"mints": [mint.url]}, lightning={"watch_interval_s": 0.2})
    strict_key = await key_by_invoice(strict, 100)
    hits = host.hits
    body = {"lightning_address": host.address("alice"), "amount": 10}
    status, _, answer = await call(strict, "POST", WITHDRAW, strict_key, json=body)
    assert status == 400 and answer["error"]["code"] == "lnurl_host_refused", answer
    assert host.hits == hits and strict.balance(strict_key) == 100_000
    ln_node.assert_clean()


async def test_the_operator_takes_earnings_to_a_lightning_address_never_more(
    make_node: Callable[..., NodeHandle], mint: MintInfo, host: LnurlHost
) -> None:
    node, key = await node_with_earnings(make_node, mint)
    owed = node.balance(key)
    async with AdminClient(node.url) as admin:
        await admin.login()
        earned = (await admin.get("/admin/api/earnings"))["withdrawable_sat"]
        assert earned >= 60
        path = "/admin/api/earnings/withdraw"
        body = {"lightning_address": host.address("operator"), "amount": earned}
        status, answer, _ = await admin.call("POST", path, body)  # no room left for the fees
        assert status == 409 and answer["error"]["code"] == "exceeds_earnings", answer
        body["amount"] = 40
        paid = await admin.send("POST", path, body)
        assert paid["status"] == "paid" and paid["amount"] == 40 and paid["fee_sat"] >= 1
        after = await admin.get("/admin/api/earnings")
        assert after["withdrawable_sat"] == earned - 40 - paid["fee_sat"]
        assert after["solvent"] is True
    assert node.balance(key) == owed  # no client paid any of it
    node.assert_clean()


async def test_refund_to_an_invoice_and_the_routstr_alias(
    ln_node: NodeHandle, host: LnurlHost
) -> None:
    key = await key_by_invoice(ln_node, 300)
    status, _, paid = await call(
        ln_node, "POST", "/v1/balance/refund", key,
        json={"lightning_address": host.address("carol"), "amount": 100},
    )  # fmt: skip
    assert status == 200 and paid["status"] == "paid", paid
    left = 300 - 100 - paid["fee_sat"]
    assert ln_node.balance(key) == left * 1000
    status, _, token = await call(ln_node, "POST", "/v1/wallet/refund", key)  # no body: a token
    assert status == 200 and token["amount"] == left, token
    assert ln_node.balance(key) == 0
    ln_node.assert_clean()


async def test_a_key_made_with_refund_lnurl_is_paid_out_there_when_it_expires(
    ln_node: NodeHandle, host: LnurlHost, mint: MintInfo, ref_wallet: RefWallet
) -> None:
    """Routstr's `Refund-LNURL` and `Key-Expiry-Time` headers at creation: at expiry the node
    pays the balance (less the fees) to the address, once, and the key spends no more."""
    expiry = int(time.time()) + 4
    lnurl1 = bech32.encode(
        "lnurl", f"{host.url}/.well-known/lnurlp/bob".encode(), bech32.BECH32
    ).upper()
    keys = []
    for address in (host.address("alice"), lnurl1):
        token = await ref_wallet.token(mint.url, 200)
        headers = {"Refund-LNURL": address, "Key-Expiry-Time": str(expiry)}
        status, _, made = await call(
            ln_node, "POST", "/v1/wallet/create", headers=headers, json={"cashu_token": token}
        )
        assert status == 200, made
        keys.append(made["api_key"])
    deadline = time.monotonic() + 20
    while len(host.asked) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    await asyncio.sleep(1)  # more rounds of the watcher pay nothing more
    assert len(host.asked) == 2 and all(0 < a <= 200_000 for a in host.asked), host.asked
    for key in keys:
        assert ln_node.balance(key) < 5_000  # the margin kept for fees and not used stays
        status, _, answer = await call(ln_node, "POST", "/v1/chat/completions", key, json=HELLO)
        assert status == 401 and answer["error"]["code"] == "key_expired", answer
    bad = {"Refund-LNURL": "nope", "Key-Expiry-Time": str(expiry)}
    token = await ref_wallet.token(mint.url, 10)
    status, _, answer = await call(
        ln_node, "POST", "/v1/wallet/create", headers=bad, json={"cashu_token": token}
    )
    assert status == 400 and answer["error"]["param"] == "Refund-LNURL", answer
    ln_node.assert_clean()


async def test_earnings_past_the_threshold_are_paid_to_the_operators_address(
    make_node: Callable[..., NodeHandle], mint: MintInfo, host: LnurlHost
) -> None:
    node = make_node(
        node={"admin_password": PASSWORD},
        cashu={"mints": [mint.url]},
        pricing={"request_fee_msat": 20_000},
        lightning={
            "watch_interval_s": 0.2,
            "lnurl_allow_local": True,
            "earnings_address": host.address("operator"),
            "earnings_threshold_sats": 50,
        },
    )
    key = await key_by_invoice(node, 200)
    api = async_openai(f"{node.url}/v1", key)
    await api.chat.completions.create(**HELLO, max_tokens=5)  # 20 sat earned: below
    await asyncio.sleep(0.6)
    assert host.asked == []
    for _ in range(2):  # 60 sat and more: past the threshold
        await api.chat.completions.create(**HELLO, max_tokens=5)
    deadline = time.monotonic() + 20
    while not host.asked and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    await asyncio.sleep(0.6)
    (asked,) = host.asked
    assert 50_000 <= asked < 60_000 + 1000
    owed = node.balance(key)
    async with AdminClient(node.url) as admin:
        await admin.login()
        after = await admin.get("/admin/api/earnings")
        assert 0 <= after["withdrawable_sat"] < 5 and after["solvent"] is True
    assert node.balance(key) == owed
    node.assert_clean()


async def test_the_operators_retried_address_payout_gets_the_first_one_back(
    make_node: Callable[..., NodeHandle], mint: MintInfo, host: LnurlHost
) -> None:
    """An earnings payout to a Lightning address, retried with its Idempotency-Key once it
    has taken most of the earnings: the first payment again, not a refusal for the earnings
    the payment itself used up."""
    node, _ = await node_with_earnings(make_node, mint)
    async with AdminClient(node.url) as admin:
        await admin.login()
        earned = (await admin.get("/admin/api/earnings"))["withdrawable_sat"]
        body = {"lightning_address": host.address("operator"), "amount": earned - 10}
        path, once = "/admin/api/earnings/withdraw", {"Idempotency-Key": "earnings-1"}
        status, paid, _ = await admin.call("POST", path, body, more=once)
        assert status == 200 and paid["status"] == "paid", paid
        status, again, _ = await admin.call("POST", path, body, more=once)
        assert status == 200 and again == paid, again
    assert host.asked == [(earned - 10) * 1000]  # paid once
    node.assert_clean()
