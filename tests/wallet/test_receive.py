"""Receiving tokens minted by Nutshell's wallet, on real Nutshell mints."""

from __future__ import annotations

import asyncio

import pytest

from node.dev.procs import free_port
from tests.support.mints import MintInfo, RefWallet
from tests.support.pg import BOTH_BACKENDS
from tests.support.proxy import MintProxy
from tests.wallet.conftest import MakeWallet
from wallet import (
    AlreadyCredited,
    MintUnavailable,
    Receipt,
    TokenInvalid,
    TokenSpent,
    UnsupportedUnit,
    UntrustedMint,
    parse_token,
    serialize_v3,
    serialize_v4,
)
from wallet.outputs import input_fee

pytestmark = BOTH_BACKENDS


@pytest.mark.parametrize("version", [3, 4])
async def test_nutshell_token_is_credited_in_full(
    mint: MintInfo, ref_wallet: RefWallet, make_wallet: MakeWallet, version: int
) -> None:
    env = make_wallet(mint.url)
    token = await ref_wallet.token(mint.url, 100, version=version)
    assert token.startswith("cashuA" if version == 3 else "cashuB")
    receipt = await env.wallet.receive(token, "topup-1")
    assert receipt == Receipt(100_000, 0, mint.url, "sat")
    assert env.ledger.events("credit") == [("topup-1", 100_000)]
    assert env.wallet.assets_msat() == {mint.url: 100_000}
    assert env.pending_swaps() == 0


@pytest.mark.parametrize("version", [3, 4])
async def test_input_fee_is_deducted_from_the_credit(
    fee_mint: MintInfo, ref_wallet: RefWallet, make_wallet: MakeWallet, version: int
) -> None:
    env = make_wallet(fee_mint.url)
    token = await ref_wallet.token(fee_mint.url, 100, version=version)
    fee = input_fee([100] * len(parse_token(token).proofs))
    assert fee >= 1
    receipt = await env.wallet.receive(token, "topup-fee")
    assert (receipt.amount_msat, receipt.fee_msat) == ((100 - fee) * 1000, fee * 1000)
    assert env.wallet.assets_msat() == {fee_mint.url: (100 - fee) * 1000}


async def test_a_spent_token_is_refused_and_credited_once(
    mint: MintInfo, ref_wallet: RefWallet, make_wallet: MakeWallet
) -> None:
    env = make_wallet(mint.url)
    token = await ref_wallet.token(mint.url, 21)
    await env.wallet.receive(token, "a")
    with pytest.raises(TokenSpent) as info:
        await env.wallet.receive(token, "b")
    assert not isinstance(info.value, AlreadyCredited)
    assert env.ledger.events("credit") == [("a", 21_000)]
    assert env.pending_swaps() == 0


async def test_a_purpose_is_never_credited_twice(
    mint: MintInfo, ref_wallet: RefWallet, make_wallet: MakeWallet
) -> None:
    env = make_wallet(mint.url)
    await env.wallet.receive(await ref_wallet.token(mint.url, 5), "same")
    with pytest.raises(AlreadyCredited) as info:
        await env.wallet.receive(await ref_wallet.token(mint.url, 7), "same")
    assert info.value.receipt.amount_msat == 5_000
    assert env.ledger.events("credit") == [("same", 5_000)]


@pytest.mark.parametrize("same_purpose", [False, True])
async def test_twelve_concurrent_redeems_credit_once(
    mint: MintInfo, ref_wallet: RefWallet, make_wallet: MakeWallet, same_purpose: bool
) -> None:
    env = make_wallet(mint.url)
    token = await ref_wallet.token(mint.url, 64)
    purposes = ["p"] * 12 if same_purpose else [f"p{i}" for i in range(12)]
    results = await asyncio.gather(
        *(env.wallet.receive(token, p) for p in purposes), return_exceptions=True
    )
    receipts = [r for r in results if isinstance(r, Receipt)]
    refused = [r for r in results if isinstance(r, TokenSpent)]
    assert len(receipts) == 1 and len(refused) == 11, results
    assert len(env.ledger.events("credit")) == 1
    assert env.wallet.assets_msat() == {mint.url: 64_000}


async def test_untrusted_mint_is_refused_without_any_connection(
    mint: MintInfo, ref_wallet: RefWallet, make_wallet: MakeWallet
) -> None:
    connections: list[object] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer.get_extra_info("peername"))
        writer.close()

    port = free_port()
    server = await asyncio.start_server(on_connect, "127.0.0.1", port)
    try:
        evil = f"http://127.0.0.1:{port}"
        real = parse_token(await ref_wallet.token(mint.url, 3))
        env = make_wallet(mint.url)
        for text in (serialize_v4(real.with_mint(evil)), serialize_v3(real.with_mint(evil))):
            with pytest.raises(UntrustedMint):
                await env.wallet.receive(text, "evil")
        await asyncio.sleep(0.2)
    finally:
        server.close()
        await server.wait_closed()
    assert connections == []
    assert env.ledger.events("credit") == []


async def test_other_units_are_refused(
    mint: MintInfo, ref_wallet: RefWallet, make_wallet: MakeWallet
) -> None:
    real = parse_token(await ref_wallet.token(mint.url, 2))
    env = make_wallet(mint.url)
    with pytest.raises(UnsupportedUnit):
        await env.wallet.receive(serialize_v4(real.with_unit("usd")), "usd")
    # the token was not touched: still redeemable
    assert (await env.wallet.receive(serialize_v4(real), "sat")).amount_msat == 2_000


async def test_keyset_unknown_to_the_mint_is_malformed(
    mint: MintInfo, ref_wallet: RefWallet, make_wallet: MakeWallet
) -> None:
    real = parse_token(await ref_wallet.token(mint.url, 1))
    bad = real.with_proofs(
        [p.__class__(p.amount, "00ffffffffffffff", p.secret, p.c) for p in real.proofs]
    )
    env = make_wallet(mint.url)
    with pytest.raises(TokenInvalid):
        await env.wallet.receive(serialize_v4(bad), "x")


async def test_unreachable_mint_is_mint_unavailable(make_wallet: MakeWallet) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    env = make_wallet(dead, timeout_s=2)
    with pytest.raises(MintUnavailable):
        await env.wallet.receive(serialize_v4(parse_token(_VECTOR_V4).with_mint(dead)), "x")
    assert env.ledger.events("credit") == [] and env.pending_swaps() == 0


async def test_lost_swap_answer_is_recovered_and_credited_once(
    mint: MintInfo, ref_wallet: RefWallet, make_wallet: MakeWallet
) -> None:
    proxy = await MintProxy(mint.url).start()
    try:
        env = make_wallet(proxy.url, timeout_s=1.5)
        token = await ref_wallet.token(mint.url, 40)
        proxy.swallow = {"/v1/swap"}
        with pytest.raises(MintUnavailable):
            await env.wallet.receive(serialize_v4(parse_token(token).with_mint(proxy.url)), "lost")
        assert env.pending_swaps() == 1 and env.ledger.events("credit") == []
        proxy.swallow = set()
        await env.wallet.recover()
        await env.wallet.recover()  # idempotent
        assert env.ledger.events("credit") == [("lost", 40_000)]
        assert env.pending_swaps() == 0
        assert env.wallet.assets_msat() == {proxy.url: 40_000}
    finally:
        await proxy.stop()


async def test_retrying_a_lost_receive_settles_it_first(
    mint: MintInfo, ref_wallet: RefWallet, make_wallet: MakeWallet
) -> None:
    proxy = await MintProxy(mint.url).start()
    try:
        env = make_wallet(proxy.url, timeout_s=1.5)
        token = serialize_v4(parse_token(await ref_wallet.token(mint.url, 9)).with_mint(proxy.url))
        proxy.swallow = {"/v1/swap"}
        with pytest.raises(MintUnavailable):
            await env.wallet.receive(token, "retry")
        proxy.swallow = set()
        with pytest.raises(AlreadyCredited) as info:  # the retry finds the first attempt's swap
            await env.wallet.receive(token, "retry")
        assert info.value.receipt.amount_msat == 9_000
        assert env.ledger.events("credit") == [("retry", 9_000)]
    finally:
        await proxy.stop()


async def test_receives_on_different_mints_do_not_wait_on_each_other(
    mint: MintInfo, fee_mint: MintInfo, ref_wallet: RefWallet, make_wallet: MakeWallet
) -> None:
    env = make_wallet(mint.url, fee_mint.url)
    token = await ref_wallet.token(mint.url, 4)
    async with env.wallet._lock(fee_mint.url):  # fee_mint busy (as during a slow swap)
        receipt = await asyncio.wait_for(env.wallet.receive(token, "free"), 10)
    assert receipt.amount_msat == 4_000


_VECTOR_V4 = (
    "cashuBpGF0gaJhaUgArSaMTR9YJmFwgaNhYQFhc3hAOWE2ZGJiODQ3YmQyMzJiYTc2ZGIwZGYxOTcyMTZiMjlkM2I4Y2M"
    "xNDU1M2NkMjc4MjdmYzFjYzk0MmZlZGI0ZWFjWCEDhhhUP_trhpXfStS6vN6So0qWvc2X3O4NfM-Y1HISZ5JhZGlUaGFu"
    "ayB5b3VhbXVodHRwOi8vbG9jYWxob3N0OjMzMzhhdWNzYXQ="
)
