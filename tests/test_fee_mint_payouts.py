"""At a mint with input fees (NUT-02, 100 ppk), whoever moves the money pays its fees.

A payout of N sat is a token worth exactly N; the account paid from is debited N plus the
node's own swap fee for it. The node never pays a fee out of other clients' backing: after any
number of small payouts, merged and redeemed in one swap, the node's proofs (checked at the
mint, NUT-07) still cover every balance, and no client holds more than it paid in.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import wallet as cashu
from node.dev.procs import free_port
from tests.conftest import NodeHandle
from tests.support.admin_client import PASSWORD
from tests.support.mints import MINT_PYTHON, MintInfo, RefWallet, _mint_env, _Process
from tests.support.money import admin_audit, assert_solvent, call, merge_tokens
from tests.support.pg import BOTH_BACKENDS

pytestmark = BOTH_BACKENDS

HELLO = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


@pytest.fixture
def fee_node(make_node: Callable[..., NodeHandle], fee_mint: MintInfo) -> NodeHandle:
    return make_node(node={"admin_password": PASSWORD}, cashu={"mints": [fee_mint.url]})


async def test_thirty_one_sat_withdraws_merged_never_pay_more_than_was_deposited(
    fee_node: NodeHandle, fee_mint: MintInfo, ref_wallet: RefWallet
) -> None:
    """The issue's reproduction: 40 sat in, 30 withdraws of 1 sat, all redeemed in one swap."""
    token = await ref_wallet.token(fee_mint.url, 40)
    assert (await call(fee_node, "GET", "/v1/wallet/balance", token))[0] == 200
    tokens = []
    for _ in range(30):
        before = fee_node.balance(token)
        status, _, body = await call(
            fee_node, "POST", "/v1/wallet/withdraw", token, json={"amount": 1}
        )
        if status == 200:
            tokens.append(body["cashu_token"])
            continue
        assert status == 402, body  # the balance no longer covers 1 sat plus its fee
        assert fee_node.balance(token) == before
        if before >= 1000:
            assert "fee of 1 sat" in body["error"]["message"], body
    got = await ref_wallet.receive(merge_tokens(tokens))
    left = fee_node.balance(token)
    assert got * 1000 + left <= 40_000
    assert_solvent(await admin_audit(fee_node))
    assert {cashu.parse_token(t).amount for t in tokens} == {1}  # no fee added to a token
    fee_node.assert_clean()


async def test_twenty_requests_each_paid_with_the_previous_change_leave_the_node_solvent(
    fee_node: NodeHandle, fee_mint: MintInfo, ref_wallet: RefWallet
) -> None:
    token = await ref_wallet.token(fee_mint.url, 100)
    charged = 0
    for i in range(20):
        status, headers, body = await call(
            fee_node, "POST", "/v1/chat/completions", x_cashu=token, json=HELLO
        )
        assert status == 200, (i, body)
        charged += int(headers["X-Cost-Msat"])
        token = headers["X-Cashu"]
        assert cashu.parse_token(token).amount * 1000 <= 100_000 - charged
    got = await ref_wallet.receive(token)
    assert got * 1000 <= 100_000 - charged
    assert_solvent(await admin_audit(fee_node))
    fee_node.assert_clean()


async def test_a_withdraw_is_debited_its_amount_plus_the_nodes_swap_fee(
    fee_node: NodeHandle, fee_mint: MintInfo, ref_wallet: RefWallet
) -> None:
    token = await ref_wallet.token(fee_mint.url, 100)
    before = (await call(fee_node, "GET", "/v1/wallet/balance", token))[2]["balance_msat"]
    status, _, body = await call(
        fee_node, "POST", "/v1/wallet/withdraw", token, json={"amount": 37}
    )
    assert status == 200, body
    assert cashu.parse_token(body["cashu_token"]).amount == 37 == body["amount"]
    assert body["fee_msat"] == body["fee_sat"] * 1000
    assert fee_node.balance(token) == before - 37_000 - body["fee_msat"]
    assert await ref_wallet.receive(body["cashu_token"]) <= 37  # the receiver pays its own fee
    assert_solvent(await admin_audit(fee_node))


async def test_withdraw_all_pays_the_largest_amount_whose_fee_fits(
    fee_node: NodeHandle, fee_mint: MintInfo, ref_wallet: RefWallet
) -> None:
    token = await ref_wallet.token(fee_mint.url, 100)
    await call(fee_node, "POST", "/v1/wallet/withdraw", token, json={"amount": 7})  # a swap
    before = fee_node.balance(token)
    status, _, body = await call(fee_node, "POST", "/v1/wallet/refund", token)
    assert status == 200, body
    assert (body["amount"] + body["fee_sat"]) * 1000 <= before
    assert before - (body["amount"] + body["fee_sat"]) * 1000 < 2000  # nothing more fitted
    assert fee_node.balance(token) == before - (body["amount"] + body["fee_sat"]) * 1000
    assert_solvent(await admin_audit(fee_node))
    fee_node.assert_clean()


async def test_amount_plus_fee_beyond_the_balance_is_a_402_naming_the_fee(
    fee_node: NodeHandle, fee_mint: MintInfo, ref_wallet: RefWallet
) -> None:
    other = await ref_wallet.token(fee_mint.url, 64)  # one proof: 63 sat after the fee
    token = await ref_wallet.token(fee_mint.url, 20)  # 16 + 4: 19 sat after the fee
    for key in (other, token):
        assert (await call(fee_node, "GET", "/v1/wallet/balance", key))[0] == 200
    for _ in range(2):  # the other client takes the small proofs (2 + 1, twice), fee-free
        status, _, body = await call(
            fee_node, "POST", "/v1/wallet/withdraw", other, json={"amount": 3}
        )
        assert status == 200 and body["fee_sat"] == 0, body
    # 19 sat out of 32 + 16 + 16 + 8 + 4: a swap, whose 1 sat fee the balance cannot add
    status, _, body = await call(
        fee_node, "POST", "/v1/wallet/withdraw", token, json={"amount": 19}
    )
    assert status == 402, body
    assert body["error"]["code"] == "insufficient_balance"
    assert "fee" in body["error"]["message"], body
    assert fee_node.balance(token) == 19_000  # nothing changed
    status, _, body = await call(
        fee_node, "POST", "/v1/wallet/withdraw", token, json={"amount": 18}
    )
    assert status == 200 and body["fee_sat"] == 1, body
    assert fee_node.balance(token) == 0
    assert_solvent(await admin_audit(fee_node))
    fee_node.assert_clean()


async def test_withdraws_at_once_never_take_more_than_the_balance_with_their_fees(
    fee_node: NodeHandle, fee_mint: MintInfo, ref_wallet: RefWallet
) -> None:
    token = await ref_wallet.token(fee_mint.url, 64)
    credited = (await call(fee_node, "GET", "/v1/wallet/balance", token))[2]["balance_msat"]
    amounts: list[dict[str, Any]] = [{"amount": a} for a in (9, 7, 5, 3, 3, 11, 13)] + [{}, {}]
    answers = await asyncio.gather(
        *(
            call(fee_node, "POST", "/v1/wallet/withdraw", token, json=body, headers=key)
            for body, key in zip(
                amounts, ({"Idempotency-Key": f"k{i}"} for i in range(9)), strict=True
            )
        )
    )
    paid = [body for status, _, body in answers if status == 200]
    refused = {(status, body["error"]["code"]) for status, _, body in answers if status != 200}
    assert refused <= {(402, "insufficient_balance")}, refused
    debited = sum((p["amount"] + p["fee_sat"]) * 1000 for p in paid)
    assert debited + fee_node.balance(token) == credited
    got = await ref_wallet.receive(merge_tokens([p["cashu_token"] for p in paid]))
    assert got <= sum(p["amount"] for p in paid)
    assert_solvent(await admin_audit(fee_node))
    fee_node.assert_clean()


@pytest.fixture(scope="module")
def steep_mint() -> Iterator[MintInfo]:
    """A mint charging 1.5 sat per input: one input's fee is more than a 1 sat payout."""
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="nutgate-steep-data-"))
    env = _mint_env(port, 1500, "steep", data)
    proc = _Process("steep-mint", [str(MINT_PYTHON), "-m", "cashu.mint"], env, port, "/v1/keysets")
    proc.wait()
    yield MintInfo(proc.url, 1500, proc.log)
    proc.stop()


async def test_a_payout_whose_fee_exceeds_it_is_refused_and_changes_nothing(
    make_node: Callable[..., NodeHandle], steep_mint: MintInfo, ref_wallet: RefWallet
) -> None:
    node = make_node(node={"admin_password": PASSWORD}, cashu={"mints": [steep_mint.url]})
    token = await ref_wallet.token(steep_mint.url, 64)
    balance = (await call(node, "GET", "/v1/wallet/balance", token))[2]["balance_msat"]
    if balance // 1000 % 2:  # credited as powers of two: the one 1 sat proof goes first, as is
        status, _, body = await call(node, "POST", "/v1/wallet/withdraw", token, json={"amount": 1})
        assert status == 200 and body["fee_sat"] == 0, body
        balance -= 1000
    status, _, body = await call(node, "POST", "/v1/wallet/withdraw", token, json={"amount": 1})
    assert status == 400 and body["error"]["code"] == "fees_exceed_amount", body
    assert "2 sat" in body["error"]["message"]  # the fee of a swap with one 1.5 sat input
    assert node.balance(token) == balance
    status, _, body = await call(node, "POST", "/v1/wallet/withdraw", token, json={"amount": 3})
    assert status == 200 and body["fee_sat"] == 2, body  # one proof swapped: its fee debited
    assert node.balance(token) == balance - 5_000
    assert_solvent(await admin_audit(node))
    node.assert_clean()
