"""Paying by Lightning (RIP-08) and withdrawing to a Lightning invoice, on real Nutshell mints
whose FakeWallet pays every invoice at once: the node's invoices are mint quotes (NUT-04/23),
its payments melts (NUT-05/08). The official OpenAI SDK spends the key an invoice bought."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import NodeHandle
from tests.support.logcheck import Recorder
from tests.support.mints import MintInfo
from tests.support.money import assert_proofs_cover, call
from tests.support.pg import BOTH_BACKENDS
from tests.support.sdk import async_openai
from wallet import decode_bolt11

pytestmark = BOTH_BACKENDS

HELLO: dict[str, Any] = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}]}
INVOICE = "/v1/balance/lightning/invoice"
# an invoice of BOLT-11's examples: 2017, long expired
OLD = (
    "lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsy"
    "p3k7enxv4jsxqzpuaztrnwngzn3kdzw5hydlzf03qdgm2hdq27cqv3agm2awhz5se903vruatfhq77w3ls4e"
    "vs3ch9zw97j25emudupq63nyw24cg27h2rspfj9srp"
)


@pytest.fixture
def ln_node(make_node: Callable[..., NodeHandle], mint: MintInfo, fee_mint: MintInfo) -> NodeHandle:
    return make_node(
        cashu={"mints": [mint.url, fee_mint.url]},
        lightning={"min_sats": 10, "max_sats": 5000, "watch_interval_s": 0.2},
    )


async def paid_status(node: NodeHandle, invoice_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    body: dict[str, Any]
    while True:
        status, _, body = await call(node, "GET", f"{INVOICE}/{invoice_id}/status")
        assert status == 200, body
        if body["status"] == "paid" or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.1)


async def key_by_invoice(node: NodeHandle, sats: int) -> str:
    status, _, invoice = await call(node, "POST", INVOICE, json={"amount_sats": sats})
    assert status == 200, invoice
    body = await paid_status(node, invoice["invoice_id"])
    assert body["status"] == "paid", body
    return str(body["api_key"])


async def payee_invoice(node: NodeHandle, sats: int) -> str:
    """Somebody's Lightning invoice: here, one a second node issues at its own mint."""
    status, _, invoice = await call(node, "POST", INVOICE, json={"amount_sats": sats})
    assert status == 200, invoice
    return str(invoice["bolt11"])


async def test_create_by_invoice_then_the_key_pays_a_chat_completion(
    ln_node: NodeHandle, mint: MintInfo, log_recorder: Recorder
) -> None:
    status, _, invoice = await call(
        ln_node, "POST", INVOICE, json={"amount_sats": 300, "purpose": "create"}
    )
    assert status == 200, invoice
    assert set(invoice) >= {"invoice_id", "bolt11", "amount_sats", "expires_at", "payment_hash"}
    decoded = decode_bolt11(invoice["bolt11"])
    assert decoded.amount_msat == 300_000 and decoded.payment_hash == invoice["payment_hash"]
    assert invoice["expires_at"] > time.time()
    body = await paid_status(ln_node, invoice["invoice_id"])
    assert body["status"] == "paid" and body["amount_sats"] == 300 and body["paid_at"]
    key = body["api_key"]
    assert key.startswith("sk-") and ln_node.balance(key) == 300_000
    again = await paid_status(ln_node, invoice["invoice_id"])
    assert again["api_key"] == key and ln_node.balance(key) == 300_000  # credited once
    api = async_openai(f"{ln_node.url}/v1", key)
    answer = await api.chat.completions.with_raw_response.create(**HELLO, max_tokens=10)
    assert ln_node.balance(key) == 300_000 - int(answer.headers["x-cost-msat"])
    # RIP-08's own paths answer too, and recovery by the bolt11 finds the same invoice
    status, _, found = await call(
        ln_node, "POST", "/lightning/recover", json={"bolt11": invoice["bolt11"]}
    )
    assert (
        status == 200 and found["invoice_id"] == invoice["invoice_id"] and found["api_key"] == key
    )
    # the invoice's id hands out the key: no log line holds it (the access log shows the route)
    assert not [line for line in log_recorder.lines if invoice["invoice_id"] in line]
    ln_node.assert_clean()


async def test_topup_by_invoice_adds_exactly_the_amount_even_if_nobody_polls(
    ln_node: NodeHandle,
) -> None:
    key = ln_node.new_key(5_000)
    status, _, invoice = await call(
        ln_node, "POST", INVOICE, key, json={"amount_sats": 120, "purpose": "topup"}
    )
    assert status == 200, invoice
    deadline = time.monotonic() + 20  # the node's own watcher credits it: no status call
    while ln_node.balance(key) == 5_000 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert ln_node.balance(key) == 125_000
    body = await paid_status(ln_node, invoice["invoice_id"])
    assert body["status"] == "paid" and "api_key" not in body
    await asyncio.sleep(0.5)  # more rounds of the watcher credit nothing more
    assert ln_node.balance(key) == 125_000
    ln_node.assert_clean()


async def test_withdraw_to_an_invoice_pays_once_and_returns_the_unused_reserve(
    ln_node: NodeHandle, make_node: Callable[..., NodeHandle], fee_mint: MintInfo
) -> None:
    key = await key_by_invoice(ln_node, 500)
    payee = make_node(cashu={"mints": [fee_mint.url]})  # its invoices: at the other mint
    bolt11 = await payee_invoice(payee, 100)
    headers = {"Idempotency-Key": "ln-withdraw-1"}
    body = {"invoice": bolt11}
    status, _, paid = await call(
        ln_node, "POST", "/v1/wallet/withdraw", key, headers=headers, json=body
    )
    assert status == 200, paid
    assert paid["status"] == "paid" and paid["amount"] == 100
    assert 0 <= paid["fee_sat"] < paid["fee_reserve_sat"]  # FakeWallet's fee: 1 of 2+ reserved
    assert ln_node.balance(key) == (500 - 100 - paid["fee_sat"]) * 1000
    for _ in range(2):  # a retry with the same key: the same answer, paid once
        again = await call(ln_node, "POST", "/v1/wallet/withdraw", key, headers=headers, json=body)
        assert again[0] == 200 and again[2] == paid
    assert ln_node.balance(key) == (500 - 100 - paid["fee_sat"]) * 1000
    ln_node.assert_clean()


async def test_bad_lightning_requests_are_clear_4xx_and_change_nothing(
    ln_node: NodeHandle, make_node: Callable[..., NodeHandle], mint: MintInfo
) -> None:
    key = ln_node.new_key(50_000)
    cases: list[tuple[str, str, str | None, Any, int, str | None]] = [
        ("POST", INVOICE, None, {"amount_sats": 5}, 400, "amount_out_of_range"),
        ("POST", INVOICE, None, {"amount_sats": 5001}, 400, "amount_out_of_range"),
        ("POST", INVOICE, None, {"amount_sats": "100"}, 400, "amount_out_of_range"),
        ("POST", INVOICE, None, {"amount_sats": 100, "purpose": "gift"}, 400, None),
        ("POST", INVOICE, None, {"amount_sats": 100, "purpose": "topup"}, 401, None),
        ("GET", f"{INVOICE}/lni_nope/status", None, None, 404, "invoice_not_found"),
        ("POST", "/v1/balance/lightning/recover", None, {"bolt11": OLD}, 404, "invoice_not_found"),
        ("POST", "/v1/balance/lightning/recover", None, {}, 400, None),
        ("POST", "/v1/wallet/withdraw", key, {"invoice": OLD}, 400, "invoice_expired"),
        ("POST", "/v1/wallet/withdraw", key, {"invoice": "lnbc1xyz"}, 400, "invoice_invalid"),
        ("POST", "/v1/wallet/withdraw", key, {"invoice": 7}, 400, None),
    ]
    for method, path, who, body, want, code in cases:
        status, _, answer = await call(ln_node, method, path, who, json=body)
        assert status == want, (path, body, answer)
        assert code is None or answer["error"]["code"] == code, answer
    # more than the balance: refused before any mint call, nothing taken
    big = await payee_invoice(ln_node, 4000)
    status, _, answer = await call(
        ln_node, "POST", "/v1/wallet/withdraw", key, json={"invoice": big}
    )
    assert status == 402, answer
    assert ln_node.balance(key) == 50_000
    # unpaid invoices cost a mint call per round: only so many are watched at once
    slow = {"max_open_invoices": 1, "watch_interval_s": 3600}
    full = make_node(cashu={"mints": [mint.url]}, lightning=slow)
    first = await call(full, "POST", INVOICE, json={"amount_sats": 100})
    assert first[0] == 200, first  # open until the watcher's (here distant) round
    second = await call(full, "POST", INVOICE, json={"amount_sats": 100})
    assert second[0] == 503 and second[2]["error"]["code"] == "lightning_unavailable", second
    assert second[1]["Retry-After"]
    off = make_node(cashu={"mints": [mint.url]}, lightning={"enabled": False})
    status, _, answer = await call(off, "POST", INVOICE, json={"amount_sats": 100})
    assert status == 404 and answer["error"]["code"] == "lightning_off"
    ln_node.assert_clean()


async def test_a_fee_charging_mint_never_costs_the_node_money(
    make_node: Callable[..., NodeHandle], mint: MintInfo, fee_mint: MintInfo
) -> None:
    """Input fees (NUT-02) and the melt's fee reserve are paid by the account that pays out:
    after every step the proofs held cover what the node owes."""
    node = make_node(cashu={"mints": [fee_mint.url]}, lightning={"watch_interval_s": 0.2})
    payee = make_node(cashu={"mints": [mint.url]})

    key = await key_by_invoice(node, 1000)
    assert_proofs_cover(node)
    paid_sat = 0
    bolt11 = await payee_invoice(payee, 1)  # more in fees than the amount: refused
    status, _, refused = await call(
        node, "POST", "/v1/wallet/withdraw", key, json={"invoice": bolt11}
    )
    assert status == 400 and refused["error"]["code"] == "fees_exceed_amount", refused
    assert node.balance(key) == 1000_000
    for sats in (100, 37, 3, 250):
        bolt11 = await payee_invoice(payee, sats)
        status, _, paid = await call(
            node, "POST", "/v1/wallet/withdraw", key, json={"invoice": bolt11}
        )
        assert status == 200, paid
        assert paid["fee_sat"] >= 1  # the input fee at least, taken from the account
        paid_sat += sats + paid["fee_sat"]
        assert node.balance(key) == (1000 - paid_sat) * 1000
        assert_proofs_cover(node)
    status, _, token = await call(node, "POST", "/v1/wallet/withdraw", key, json={"amount": 50})
    assert status == 200, token
    assert_proofs_cover(node)
    status, _, rest = await call(node, "POST", "/v1/wallet/withdraw", key, json={})
    assert status == 200, rest
    assert_proofs_cover(node)
