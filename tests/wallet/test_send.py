"""Paying out: tokens the node sends are received by Nutshell's wallet for the exact amount."""

from __future__ import annotations

import pytest

from tests.support.mints import MintInfo, RefWallet
from tests.support.pg import BOTH_BACKENDS
from tests.support.proxy import MintProxy
from tests.wallet.conftest import Env, MakeWallet
from wallet import (
    BudgetTooSmall,
    InsufficientFunds,
    MintUnavailable,
    PaidOut,
    PayoutPending,
    Token,
    TokenSpent,
    parse_token,
    serialize_v4,
)
from wallet.tokens import Proof

pytestmark = BOTH_BACKENDS


async def funded(env: Env, ref_wallet: RefWallet, mint: str, amount: int) -> int:
    """Receive `amount` sat from Nutshell into the wallet; returns the sat credited."""
    receipt = await env.wallet.receive(await ref_wallet.token(mint, amount), f"fund-{amount}")
    return receipt.amount_msat // 1000


@pytest.mark.parametrize("v3", [False, True])
async def test_sent_token_is_received_by_nutshell_for_the_exact_amount(
    mint: MintInfo, ref_wallet: RefWallet, make_wallet: MakeWallet, v3: bool
) -> None:
    env = make_wallet(mint.url)
    await funded(env, ref_wallet, mint.url, 100)
    token = await env.wallet.send(37, "withdraw-1", v3=v3)
    assert token.startswith("cashuA" if v3 else "cashuB")
    assert await ref_wallet.receive(token) == 37
    assert env.ledger.events("debit") == [("withdraw-1", 37_000)]
    assert env.wallet.assets_msat() == {mint.url: 63_000}
    assert env.wallet.payout("withdraw-1") == token


async def test_fee_mint_payout_is_a_token_of_the_amount_and_debits_the_swap_fee(
    fee_mint: MintInfo, ref_wallet: RefWallet, make_wallet: MakeWallet
) -> None:
    """Whoever moves the money pays its fees: the token is worth exactly the amount (its
    receiver pays its own fee to redeem it) and the debit is the amount plus our swap fee."""
    env = make_wallet(fee_mint.url)
    held = await funded(env, ref_wallet, fee_mint.url, 200)
    token = await env.wallet.send(30, "withdraw-fee")
    assert parse_token(token).amount == 30
    (payout,) = env.payouts()
    assert payout["fee_sat"] >= 1 and payout["send_amounts"] != "[]"  # a swap: our fee
    assert env.ledger.events("debit") == [("withdraw-fee", (30 + payout["fee_sat"]) * 1000)]
    assert env.wallet.assets_msat() == {fee_mint.url: (held - 30 - payout["fee_sat"]) * 1000}
    assert env.wallet.paid("withdraw-fee") == PaidOut(token, 30, payout["fee_sat"], fee_mint.url)
    proofs = len(parse_token(token).proofs)
    assert await ref_wallet.receive(token) == 30 - -(-proofs * fee_mint.fee_ppk // 1000)


async def test_send_up_to_pays_the_largest_amount_whose_fee_fits(
    fee_mint: MintInfo, ref_wallet: RefWallet, make_wallet: MakeWallet
) -> None:
    env = make_wallet(fee_mint.url)
    held = await funded(env, ref_wallet, fee_mint.url, 64)  # one proof in: 63 = 32+16+8+4+2+1
    await env.wallet.send(3, "small")  # 2 + 1, as they are
    token = await env.wallet.send_up_to(46_500, "most")  # 32+16+8+4 held: 46 needs a swap
    paid = env.wallet.paid("most")
    assert paid is not None and paid.token == token and parse_token(token).amount == paid.amount_sat
    assert paid.fee_sat == 1 and paid.amount_sat == 45  # 45 + 1 fits 46.5, 46 + 1 does not
    assert env.ledger.events("debit") == [("small", 3_000), ("most", 46_000)]
    assert env.wallet.assets_msat() == {fee_mint.url: (held - 3 - 46) * 1000}
    with pytest.raises(BudgetTooSmall) as refused:  # no 1 sat proof left: 1 + 1 > 1.9
        await env.wallet.send_up_to(1_900, "tiny")
    assert (refused.value.amount_sat, refused.value.fee_sat) == (1, 1)
    assert env.ledger.events("debit")[-1][0] == "most"  # nothing moved


async def test_exact_proofs_are_sent_without_a_swap(
    mint: MintInfo, ref_wallet: RefWallet, make_wallet: MakeWallet
) -> None:
    env = make_wallet(mint.url)
    await funded(env, ref_wallet, mint.url, 100)  # held as 64 + 32 + 4
    token = await env.wallet.send(36, "exact")
    (payout,) = env.payouts()
    assert payout["send_amounts"] == "[]" and payout["state"] == "done"
    assert sorted(p.amount for p in parse_token(token).proofs) == [4, 32]
    assert await ref_wallet.receive(token) == 36


async def test_send_is_idempotent_per_purpose(
    mint: MintInfo, ref_wallet: RefWallet, make_wallet: MakeWallet
) -> None:
    env = make_wallet(mint.url)
    await funded(env, ref_wallet, mint.url, 50)
    first = await env.wallet.send(10, "once")
    assert await env.wallet.send(10, "once") == first
    assert env.ledger.events("debit") == [("once", 10_000)]
    assert env.wallet.assets_msat() == {mint.url: 40_000}


async def test_insufficient_funds_leaves_everything_as_it_was(
    mint: MintInfo, ref_wallet: RefWallet, make_wallet: MakeWallet
) -> None:
    env = make_wallet(mint.url)
    await funded(env, ref_wallet, mint.url, 20)
    with pytest.raises(InsufficientFunds):
        await env.wallet.send(21, "too-much")
    assert env.ledger.events("debit") == []  # the debit rolled back with the selection
    assert env.payouts() == [] and env.wallet.assets_msat() == {mint.url: 20_000}
    assert await ref_wallet.receive(await env.wallet.send(20, "all")) == 20


async def test_a_refused_debit_reserves_nothing(
    mint: MintInfo, ref_wallet: RefWallet, make_wallet: MakeWallet
) -> None:
    env = make_wallet(mint.url)
    await funded(env, ref_wallet, mint.url, 20)
    env.ledger.refuse_debits = True
    with pytest.raises(InsufficientFunds, match="account balance"):
        await env.wallet.send(5, "refused")
    reserved = env.db.query("SELECT * FROM wallet_proofs WHERE state != 'unspent'")
    assert reserved == [] and env.payouts() == []


async def test_failed_swap_returns_the_proofs_and_refunds(
    mint: MintInfo, ref_wallet: RefWallet, make_wallet: MakeWallet
) -> None:
    env = make_wallet(mint.url)
    await funded(env, ref_wallet, mint.url, 8)  # one proof of 8
    # Someone spends our proof behind the wallet's back (a restored backup, a leaked seed…).
    row = env.db.query_one("SELECT * FROM wallet_proofs WHERE state = 'unspent'")
    assert row is not None
    stolen = Token(mint.url, [Proof(row["amount"], row["keyset_id"], row["secret"], row["c"])])
    assert await ref_wallet.receive(serialize_v4(stolen)) == 8
    with pytest.raises(TokenSpent):
        await env.wallet.send(3, "doomed")
    assert env.ledger.events("refund") == [("doomed", 3_000)]
    assert [p["state"] for p in env.payouts()] == ["failed"]
    assert env.wallet.assets_msat() == {}  # the spent proof is marked spent, not held


async def test_a_failed_payout_at_a_fee_mint_refunds_its_amount_and_its_fee(
    fee_mint: MintInfo, ref_wallet: RefWallet, make_wallet: MakeWallet
) -> None:
    env = make_wallet(fee_mint.url)
    assert await funded(env, ref_wallet, fee_mint.url, 10) == 9  # held as 8 + 1
    row = env.db.query_one("SELECT * FROM wallet_proofs WHERE amount = 8")
    assert row is not None
    stolen = Token(fee_mint.url, [Proof(8, row["keyset_id"], row["secret"], row["c"])])
    assert await ref_wallet.receive(serialize_v4(stolen)) == 7  # spent behind the wallet's back
    with pytest.raises(TokenSpent):
        await env.wallet.send(3, "doomed")  # 3 is no set of 8 + 1: a swap of the 8, fee 1
    assert env.ledger.events("debit") == [("doomed", 4_000)]
    assert env.ledger.events("refund") == [("doomed", 4_000)]  # the fee too
    assert [p["state"] for p in env.payouts()] == ["failed"]


async def test_lost_swap_answer_then_retry_returns_the_token(
    mint: MintInfo, ref_wallet: RefWallet, make_wallet: MakeWallet
) -> None:
    proxy = await MintProxy(mint.url).start()
    try:
        env = make_wallet(proxy.url, timeout_s=1.5)
        token_in = serialize_v4(
            parse_token(await ref_wallet.token(mint.url, 50)).with_mint(proxy.url)
        )
        await env.wallet.receive(token_in, "fund")
        proxy.swallow = {"/v1/swap"}
        with pytest.raises(MintUnavailable):
            await env.wallet.send(13, "lost-payout")
        assert env.wallet.payout("lost-payout") is None
        proxy.refuse = True
        with pytest.raises(PayoutPending):
            await env.wallet.send(13, "lost-payout")
        proxy.refuse, proxy.swallow = False, set()
        token = await env.wallet.send(13, "lost-payout")  # settles the first attempt: restore
        assert env.ledger.events("debit") == [("lost-payout", 13_000)]
        assert env.ledger.events("refund") == []
        out = serialize_v4(parse_token(token).with_mint(mint.url))
        assert await ref_wallet.receive(out) == 13
        assert env.wallet.assets_msat() == {proxy.url: 37_000}
    finally:
        await proxy.stop()


async def test_payout_whose_swap_never_reached_the_mint_is_rolled_back_by_recover(
    mint: MintInfo, ref_wallet: RefWallet, make_wallet: MakeWallet
) -> None:
    proxy = await MintProxy(mint.url).start()
    try:
        env = make_wallet(proxy.url, timeout_s=1.5)
        token_in = serialize_v4(
            parse_token(await ref_wallet.token(mint.url, 30)).with_mint(proxy.url)
        )
        await env.wallet.receive(token_in, "fund")
        proxy.refuse = True  # 503: the outcome is unknown to the wallet
        with pytest.raises(MintUnavailable):
            await env.wallet.send(7, "never")
        await env.wallet.recover()  # still down: stays pending
        assert [p["state"] for p in env.payouts()] == ["pending"]
        proxy.refuse = False
        await env.wallet.recover()
        assert [p["state"] for p in env.payouts()] == ["failed"]
        assert env.ledger.events("refund") == [("never", 7_000)]
        assert env.wallet.assets_msat() == {proxy.url: 30_000}
    finally:
        await proxy.stop()


async def test_check_states_reports_the_mints_view(
    mint: MintInfo, ref_wallet: RefWallet, make_wallet: MakeWallet
) -> None:
    env = make_wallet(mint.url)
    await funded(env, ref_wallet, mint.url, 3)
    states = await env.wallet.check_states()
    assert {(s.amount, s.local, s.remote) for s in states} == {
        (1, "unspent", "UNSPENT"),
        (2, "unspent", "UNSPENT"),
    }


async def test_payout_to_a_mint_that_refuses_connections_is_undone_at_once(
    mint: MintInfo, ref_wallet: RefWallet, make_wallet: MakeWallet
) -> None:
    proxy = await MintProxy(mint.url).start()
    env = make_wallet(proxy.url, timeout_s=1.5)
    token_in = serialize_v4(parse_token(await ref_wallet.token(mint.url, 30)).with_mint(proxy.url))
    await env.wallet.receive(token_in, "fund")
    await proxy.stop()  # nothing listens there any more: the swap can never reach the mint
    with pytest.raises(MintUnavailable):
        await env.wallet.send(7, "down")
    assert [p["state"] for p in env.payouts()] == ["failed"]
    assert env.ledger.events("debit") == [("down", 7_000)]
    assert env.ledger.events("refund") == [("down", 7_000)]
    assert env.wallet.assets_msat() == {proxy.url: 30_000}
