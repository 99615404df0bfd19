"""`[cashu] accept_foreign`: a token of a mint the node does not trust is melted at its own mint
into an invoice of a trusted one, after the node quoted the fees (the token's input fee and
the melt's fee reserve), which the token pays, never the node. Off (the default), such a token
is refused before any contact (tests/safety/test_lightning_faults.py listens for it)."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import NodeHandle
from tests.support.mints import MintInfo, RefWallet, RefWalletError
from tests.support.money import assert_proofs_cover, call
from tests.support.sdk import async_openai
from tests.test_lightning import HELLO

CREATE = "/v1/wallet/create"


async def test_a_foreign_token_is_credited_its_value_less_the_quoted_fees(
    make_node: Callable[..., NodeHandle], mint: MintInfo, fee_mint: MintInfo, ref_wallet: RefWallet
) -> None:
    node = make_node(
        cashu={"mints": [mint.url], "accept_foreign": True},
        lightning={"watch_interval_s": 0.2, "lnurl_allow_local": True},  # fee_mint: loopback
    )
    token = await ref_wallet.token(fee_mint.url, 100)  # fee_mint: not trusted by this node
    status, _, quoted = await call(node, "POST", CREATE, json={"cashu_token": token})
    assert status == 400 and quoted["error"]["code"] == "foreign_mint_fees", quoted
    assert quoted["error"]["param"] == "accept_fees_sat"
    fee = int(quoted["error"]["message"].rsplit(":", 1)[1])
    assert 3 <= fee < 10  # input fee 1 + a reserve of 2 or more
    body = {"cashu_token": token, "accept_fees_sat": fee - 1}  # less than quoted: refused
    status, _, again = await call(node, "POST", CREATE, json=body)
    assert status == 400 and again["error"]["code"] == "foreign_mint_fees"
    body["accept_fees_sat"] = fee
    status, _, made = await call(node, "POST", CREATE, json=body)
    assert status == 200, made
    key = made["api_key"]
    assert node.balance(key) == (100 - fee) * 1000 and made["mint"] == mint.url
    with_retry = await call(node, "POST", CREATE, json=body)  # the same token again
    assert with_retry[0] == 200 and with_retry[2]["api_key"] == key
    assert node.balance(key) == (100 - fee) * 1000  # credited once
    try:  # the token is gone at its own mint: melted
        await ref_wallet.receive(token)
        raise AssertionError("the foreign token was not melted")
    except RefWalletError:
        pass
    api = async_openai(f"{node.url}/v1", key)
    await api.chat.completions.create(**HELLO, max_tokens=5)
    topup = await ref_wallet.token(fee_mint.url, 60)
    body = {"cashu_token": topup, "accept_fees_sat": 10}
    status, _, added = await call(node, "POST", "/v1/wallet/topup", key, json=body)
    assert status == 200 and 50 <= added["amount_added"] < 60, added
    assert_proofs_cover(node)


async def test_a_foreign_token_of_a_mint_on_a_private_address_is_refused_before_any_contact(
    make_node: Callable[..., NodeHandle], mint: MintInfo, fee_mint: MintInfo, ref_wallet: RefWallet
) -> None:
    """The client names the mint: the node must not reach inside its own network for it."""
    node = make_node(
        cashu={"mints": [mint.url], "accept_foreign": True}, lightning={"watch_interval_s": 0.2}
    )
    token = await ref_wallet.token(fee_mint.url, 100)  # fee_mint: on a loopback address
    body = {"cashu_token": token, "accept_fees_sat": 10}
    status, _, refused = await call(node, "POST", CREATE, json=body)
    assert status == 400 and refused["error"]["code"] == "lnurl_host_refused", refused
    assert refused["error"]["param"] == "cashu_token"
    row = node.db.query_one("SELECT COUNT(*) FROM wallet_invoices")
    assert row is not None and row[0] == 0  # no quote asked
    await ref_wallet.receive(token)  # the token was not melted: it is still its owner's
    node.assert_clean()
