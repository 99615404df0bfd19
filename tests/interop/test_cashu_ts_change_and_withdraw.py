"""The tokens the node hands back (X-Cashu change, withdrawals, Routstr refunds) as real wallets
take them: cashu-ts 4.x, strict about DLEQ proofs and the mint it belongs to, and Nutshell's wallet.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

import wallet as cashu
from tests.conftest import NodeHandle
from tests.interop.flows import (
    bearer,
    change_due,
    chat,
    create_key,
    http,
    ok,
    refund,
    stream_chat,
    withdraw,
)
from tests.support.cashu_ts import CashuTs
from tests.support.mints import MintInfo, RefWallet

# A flow: pay `sat` with a fresh cashu-ts token, return the token the node gives back and the
# whole sat it must be worth.
Flow = Callable[[NodeHandle, CashuTs, MintInfo, int], Awaitable[tuple[str, int]]]


async def x_cashu_change(
    node: NodeHandle, wallet: CashuTs, mint: MintInfo, sat: int
) -> tuple[str, int]:
    paid = await chat(node, {"X-Cashu": await wallet.token(mint.url, sat)})
    assert paid.change is not None
    return paid.change, change_due(sat, paid.cost_msat)


async def x_cashu_stream_change(
    node: NodeHandle, wallet: CashuTs, mint: MintInfo, sat: int
) -> tuple[str, int]:
    paid = await stream_chat(node, {"X-Cashu": await wallet.token(mint.url, sat)})
    assert paid.change is not None
    return paid.change, change_due(sat, paid.cost_msat)


async def withdrawal(
    node: NodeHandle, wallet: CashuTs, mint: MintInfo, sat: int
) -> tuple[str, int]:
    key, _ = await create_key(node, await wallet.token(mint.url, sat))
    paid = await chat(node, bearer(key))
    token, amount = await withdraw(node, key)
    assert amount == change_due(sat, paid.cost_msat)
    return token, amount


async def routstr_refund(
    node: NodeHandle, wallet: CashuTs, mint: MintInfo, sat: int
) -> tuple[str, int]:
    key, _ = await create_key(node, await wallet.token(mint.url, sat))
    return await refund(node, key), sat


FLOWS = [
    pytest.param(x_cashu_change, id="x-cashu-change"),
    pytest.param(x_cashu_stream_change, id="x-cashu-stream-change"),
    pytest.param(withdrawal, id="withdraw"),
    pytest.param(routstr_refund, id="routstr-refund"),
]


@pytest.mark.parametrize("flow", FLOWS)
async def test_nutshell_wallet_takes_every_token_the_node_gives(
    wallet_node: NodeHandle, cashu_ts: CashuTs, mint: MintInfo, ref_wallet: RefWallet, flow: Flow
) -> None:
    token, due = await flow(wallet_node, cashu_ts, mint, 50)
    assert await ref_wallet.receive(token) == due
    wallet_node.assert_clean()


@pytest.mark.parametrize("flow", FLOWS)
async def test_cashu_ts_requiring_dleq_takes_every_token_the_node_gives(
    wallet_node: NodeHandle, cashu_ts: CashuTs, mint: MintInfo, flow: Flow
) -> None:
    token, due = await flow(wallet_node, cashu_ts, mint, 50)
    assert await cashu_ts.receive(mint.url, token, require_dleq=True) == due


async def fund_the_other_mint(node: NodeHandle, wallet: CashuTs, fee_mint: MintInfo) -> None:
    """Someone else's deposit makes the node hold most at `fee_mint`."""
    await create_key(node, await wallet.token(fee_mint.url, 500))


async def test_withdraw_naming_the_mint_pays_there(
    two_mint_node: NodeHandle, cashu_ts: CashuTs, mint: MintInfo, fee_mint: MintInfo
) -> None:
    await fund_the_other_mint(two_mint_node, cashu_ts, fee_mint)
    key, _ = await create_key(two_mint_node, await cashu_ts.token(mint.url, 40))
    token, amount = await withdraw(two_mint_node, key, mint=mint.url)
    assert amount == 40 and cashu.parse_token(token).mint == mint.url
    assert await cashu_ts.receive(mint.url, token) == 40
    assert two_mint_node.balance(key) == 0
    two_mint_node.assert_clean()


@pytest.mark.parametrize("route", ["withdraw", "refund"])
async def test_withdraw_and_refund_pay_in_the_accounts_own_mint(
    two_mint_node: NodeHandle, cashu_ts: CashuTs, mint: MintInfo, fee_mint: MintInfo, route: str
) -> None:
    await fund_the_other_mint(two_mint_node, cashu_ts, fee_mint)
    key, _ = await create_key(two_mint_node, await cashu_ts.token(mint.url, 40))
    token = (await withdraw(two_mint_node, key))[0] if route == "withdraw" else None
    token = token or await refund(two_mint_node, key)
    assert await cashu_ts.receive(mint.url, token) == 40  # cashu-ts refuses another mint's token


def input_fee_sat(token: str, fee_ppk: int) -> int:
    """What a mint charges to swap every proof of `token` (NUT-02: rounded up per swap)."""
    return -(-len(cashu.parse_token(token).proofs) * fee_ppk // 1000)


async def test_fee_mint_amounts_are_exact_both_ways(
    two_mint_node: NodeHandle, cashu_ts: CashuTs, fee_mint: MintInfo
) -> None:
    """A 64-proof token is credited net of the mint's input fee; a withdrawal is a token worth
    exactly what was asked, which cashu-ts redeems paying its own fee, and the account pays what
    it asked for plus the node's own swap fee (`fee_msat`): whoever moves the money pays."""
    token = await cashu_ts.token(fee_mint.url, 100, proofs=64)
    key, held = await create_key(two_mint_node, token)
    assert held == (100 - input_fee_sat(token, fee_mint.fee_ppk)) * 1000
    paid = await chat(two_mint_node, bearer(key))
    assert two_mint_node.balance(key) == held - paid.cost_msat
    answer = ok(
        await http(
            two_mint_node,
            "POST",
            "/v1/wallet/withdraw",
            headers=bearer(key),
            json={"amount": 30, "mint": fee_mint.url},
        )
    )
    out = str(answer["cashu_token"])
    assert answer["amount"] == cashu.parse_token(out).amount == 30
    assert await cashu_ts.receive(fee_mint.url, out) == 30 - input_fee_sat(out, fee_mint.fee_ppk)
    fee_msat = int(answer["fee_msat"])
    assert two_mint_node.balance(key) == held - paid.cost_msat - 30_000 - fee_msat
    two_mint_node.assert_clean()


async def test_v3_payer_gets_v3_change(
    wallet_node: NodeHandle, cashu_ts: CashuTs, mint: MintInfo
) -> None:
    paid = await chat(wallet_node, {"X-Cashu": await cashu_ts.token(mint.url, 20, version=3)})
    assert paid.change is not None
    assert await cashu_ts.receive(mint.url, paid.change) == change_due(20, paid.cost_msat)
    assert paid.change.startswith("cashuA")
