"""Lightning in and out of the wallet, on real Nutshell mints (FakeWallet pays every mint quote
at once and pays any invoice, with a fee of 1 sat out of a reserve of at least 2).

In: an invoice (NUT-04/23) is minted and credited exactly once, even if the process dies
between the mint's signatures and the commit. Out: a melt (NUT-05/08) debits the amount plus
the reserve and input fee, and the unused reserve comes back (as change and as a refund)."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.mints import MintInfo
from tests.wallet.conftest import MakeWallet
from tests.wallet.test_crash import run_child
from wallet import TokenInvalid, decode_bolt11


async def test_an_invoice_is_credited_once_however_often_it_is_settled(
    mint: MintInfo, make_wallet: MakeWallet
) -> None:
    env = make_wallet(mint.url)
    invoice = await env.wallet.create_invoice(mint.url, 120, "ref-1", "topup:1:x")
    decoded = decode_bolt11(invoice.bolt11)
    assert decoded.amount_msat == 120_000 and decoded.payment_hash == invoice.payment_hash
    assert invoice.status == "pending" and env.wallet.open_invoices() == ["ref-1"]
    settled = await asyncio.gather(*(env.wallet.settle_invoice("ref-1") for _ in range(5)))
    assert {s.status for s in settled if s} == {"paid"}
    await env.wallet.recover()
    assert env.ledger.events("credit") == [("topup:1:x", 120_000)]
    assert env.wallet.assets_msat() == {mint.url: 120_000}
    assert env.wallet.open_invoices() == []
    assert env.wallet.invoice_for(invoice.bolt11.upper()) == env.wallet.invoice("ref-1")


@pytest.mark.parametrize("which", ["mint", "fee_mint"])
async def test_paying_an_invoice_debits_amount_and_the_fee_actually_paid(
    which: str, request: pytest.FixtureRequest, make_wallet: MakeWallet
) -> None:
    mint: MintInfo = request.getfixturevalue(which)
    payee: MintInfo = request.getfixturevalue("fee_mint" if which == "mint" else "mint")
    env = make_wallet(mint.url)
    await env.wallet.create_invoice(mint.url, 200, "fund", "fund")
    await env.wallet.settle_invoice("fund")
    # the payee: a wallet elsewhere (a mint's invoice it pays is settled inside that mint)
    other = make_wallet(payee.url, path=env.path.with_name("other.sqlite3"))
    bolt11 = (await other.wallet.create_invoice(payee.url, 50, "u", "user")).bolt11
    melted = await env.wallet.pay_invoice(bolt11, "withdraw:1:k", mint.url)
    assert melted.state == "paid" and melted.amount_sat == 50
    (debit,) = env.ledger.events("debit")
    refunds = env.ledger.events("refund")
    paid_msat = debit[1] - sum(r[1] for r in refunds)
    assert paid_msat == (50 + melted.fee_sat) * 1000
    assert melted.fee_sat < melted.fee_reserve_sat + 2  # the unused reserve came back
    # the node's assets fell by exactly what the account paid: it paid no fee of its own
    assert env.wallet.assets_msat() == {mint.url: 200_000 - paid_msat}
    # the payee's quote is paid: its wallet mints it
    await other.wallet.settle_invoice("u")
    assert other.ledger.events("credit") == [("user", 50_000)]
    # the same purpose again pays nothing more
    again = await env.wallet.pay_invoice(bolt11, "withdraw:1:k", mint.url)
    assert again == melted and len(env.ledger.events("debit")) == 1


async def test_an_expired_or_amountless_invoice_is_refused_before_any_debit(
    mint: MintInfo, make_wallet: MakeWallet
) -> None:
    env = make_wallet(mint.url)
    old = (
        "lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsy"
        "p3k7enxv4jsxqzpuaztrnwngzn3kdzw5hydlzf03qdgm2hdq27cqv3agm2awhz5se903vruatfhq77w3ls4e"
        "vs3ch9zw97j25emudupq63nyw24cg27h2rspfj9srp"
    )
    with pytest.raises(TokenInvalid, match="expired"):
        await env.wallet.pay_invoice(old, "p", mint.url)
    with pytest.raises(TokenInvalid):
        await env.wallet.pay_invoice("lnbc1notaninvoice", "p", mint.url)
    assert env.ledger.events("debit") == []


async def test_killed_between_the_mint_signatures_and_the_commit_credits_once(
    mint: MintInfo, make_wallet: MakeWallet
) -> None:
    env = make_wallet(mint.url)
    await run_child(
        "mint-after-mint", str(env.path), env.seed.hex(), mint.url, "invoice", "64", "crashed"
    )
    assert env.ledger.events("credit") == []
    assert [r["state"] for r in env.db.query("SELECT state FROM wallet_invoices")] == ["minting"]
    fresh = make_wallet(mint.url, path=env.path, seed=env.seed)
    await fresh.wallet.recover()
    await fresh.wallet.recover()
    assert fresh.ledger.events("credit") == [("crashed", 64_000)]
    assert fresh.wallet.assets_msat() == {mint.url: 64_000}
    assert (await fresh.wallet.send(64, "out")).startswith("cashuB")  # the proofs are real


async def test_killed_during_a_melt_is_settled_by_the_quote_state(
    mint: MintInfo, fee_mint: MintInfo, make_wallet: MakeWallet
) -> None:
    env = make_wallet(mint.url)
    await env.wallet.create_invoice(mint.url, 100, "fund", "fund")
    await env.wallet.settle_invoice("fund")
    other = make_wallet(fee_mint.url, path=env.path.with_name("other.sqlite3"))
    bolt11 = (await other.wallet.create_invoice(fee_mint.url, 40, "u", "user")).bolt11
    await run_child("melt-after-melt", str(env.path), env.seed.hex(), mint.url, "melt", bolt11, "w")
    (debit,) = env.ledger.events("debit")
    assert env.ledger.events("refund") == []
    fresh = make_wallet(mint.url, path=env.path, seed=env.seed)
    await fresh.wallet.recover()
    await fresh.wallet.recover()
    melted = fresh.wallet.melted("w")
    assert melted is not None and melted.state == "paid"
    refunds = fresh.ledger.events("refund")
    assert debit[1] - sum(r[1] for r in refunds) == (40 + melted.fee_sat) * 1000
    assert fresh.wallet.assets_msat() == {mint.url: (100 - 40 - melted.fee_sat) * 1000}
