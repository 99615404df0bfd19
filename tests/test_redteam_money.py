"""Money paths probed from outside: ways a client (or someone who once held its token) might
take more than it paid, or make the node answer a 500, each on a real node and real mints."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import NodeHandle
from tests.support.mints import MintInfo, RefWallet
from tests.support.money import assert_proofs_cover, call
from tests.test_lightning import HELLO

CREATE = "/v1/wallet/create"
TOPUP = "/v1/wallet/topup"


def foreign_node(make_node: Callable[..., NodeHandle], mint: MintInfo) -> NodeHandle:
    return make_node(
        cashu={"mints": [mint.url], "accept_foreign": True},
        lightning={"watch_interval_s": 0.2, "lnurl_allow_local": True},  # fee_mint: loopback
    )


async def test_a_melted_foreign_token_sent_again_hands_out_no_key_once_it_is_spent_from(
    make_node: Callable[..., NodeHandle], mint: MintInfo, fee_mint: MintInfo, ref_wallet: RefWallet
) -> None:
    """Whoever gave the token away still knows it: once the key it funded has been used, the
    key is the only way in, as for a trusted mint's token (`Payments.create_key`)."""
    node = foreign_node(make_node, mint)
    token = await ref_wallet.token(fee_mint.url, 100)
    body = {"cashu_token": token, "accept_fees_sat": 10}
    status, _, made = await call(node, "POST", CREATE, json=body)
    assert status == 200, made
    key = made["api_key"]
    status, _, _ = await call(node, "POST", "/v1/chat/completions", key, json=HELLO)
    assert status == 200
    before = node.balance(key)
    status, _, again = await call(node, "POST", CREATE, json=body)
    assert status == 400 and again["error"]["code"] == "token_spent", again
    assert key not in str(again)
    assert node.balance(key) == before
    assert_proofs_cover(node)


async def test_a_foreign_token_topped_up_then_sent_to_create_is_refused_not_a_500(
    make_node: Callable[..., NodeHandle], mint: MintInfo, fee_mint: MintInfo, ref_wallet: RefWallet
) -> None:
    node = foreign_node(make_node, mint)
    owner = node.new_key(1_000)
    token = await ref_wallet.token(fee_mint.url, 100)
    body = {"cashu_token": token, "accept_fees_sat": 10}
    status, _, added = await call(node, "POST", TOPUP, owner, json=body)
    assert status == 200, added
    credited = node.balance(owner)
    status, _, again = await call(node, "POST", CREATE, json=body)
    assert status == 400 and again["error"]["code"] == "token_spent", again
    other = node.new_key(1_000)  # nor is it credited, or said to be, to another account
    status, _, topped = await call(node, "POST", TOPUP, other, json=body)
    assert status == 400 and topped["error"]["code"] == "token_spent", topped
    assert node.balance(owner) == credited and node.balance(other) == 1_000
    node.assert_clean()  # (the keys' operator credit is backed by no proofs)
