"""SIGKILL the node at chosen points, restart it on the same data dir, and find every msat:
audit clean, each balance within [before − what was in flight, before], every proof unspent at
its mint, and every balance withdrawable as a token Nutshell redeems."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import pytest

from tests.safety.conftest import (
    MakeNodeProcess,
    Secrets,
    assert_books_intact,
    auth,
    call,
    moved_token,
)
from tests.safety.faulty_mint import FaultyMint
from tests.safety.harness import NodeProcess
from tests.support.mints import MintInfo, RefWallet

HELLO = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}]}


async def balance_msat(proc: NodeProcess, key: str) -> int:
    status, body = await call(proc, "GET", "/v1/wallet/balance", headers=auth(key))
    assert status == 200, body
    return int(body["balance_msat"])


async def test_kill_during_an_open_stream_charges_at_most_what_was_reserved(
    node_process: MakeNodeProcess, mint: MintInfo, ref_wallet: RefWallet, secrets: Secrets
) -> None:
    proc = await node_process().start()
    token = await ref_wallet.token(mint.url, 100)
    secrets.add(token)
    before = await balance_msat(proc, token)
    body = {**HELLO, "model": "test-slow", "stream": True, "max_tokens": 50}
    body["mock"] = {"pause_s": 60}
    async with aiohttp.ClientSession() as session:
        resp = await session.post(f"{proc.url}/v1/chat/completions", json=body, headers=auth(token))
        await resp.content.readline()  # the first chunk is out; the upstream is now pausing
        held = proc.scalar("SELECT SUM(amount_msat) FROM reservations")
        assert held > 0
        assert proc.kill() == -signal.SIGKILL
        resp.close()
    await proc.start()
    after = await balance_msat(proc, token)
    assert before - held <= after < before  # the prompt went upstream: charged, never over
    await assert_books_intact(proc, [mint.url], ref_wallet, [token])


@pytest.mark.parametrize("route", ["/v1/wallet/balance", "/v1/chat/completions"])
async def test_kill_after_the_mint_signed_a_redemption_credits_it_once(
    route: str,
    node_process: MakeNodeProcess,
    mint: MintInfo,
    ref_wallet: RefWallet,
    secrets: Secrets,
) -> None:
    proc = await node_process().start(crash_at="receive-after-swap")
    token = await ref_wallet.token(mint.url, 80)
    secrets.add(token)
    with pytest.raises(aiohttp.ClientError):
        method = "POST" if "chat" in route else "GET"
        await call(proc, method, route, json=HELLO, headers=auth(token))
    assert await proc.wait_dead() == -signal.SIGKILL
    await proc.start()
    assert await balance_msat(proc, token) == 80_000
    await assert_books_intact(proc, [mint.url], ref_wallet, [token])


async def test_no_environment_arms_a_crash_point_in_the_node(
    node_process: MakeNodeProcess, mint: MintInfo, ref_wallet: RefWallet, secrets: Secrets
) -> None:
    """The crash points are a seam of the tests (tests/support/crash_serve.py): the node as it
    is started in production ignores the variable that once armed them, and redeems."""
    proc = await node_process().start(env={"NUTGATE_WALLET_CRASH_AT": "receive-after-swap"})
    token = await ref_wallet.token(mint.url, 80)
    secrets.add(token)
    assert await balance_msat(proc, token) == 80_000
    assert proc.proc is not None and proc.proc.poll() is None  # alive after the swap
    await assert_books_intact(proc, [mint.url], ref_wallet, [token])


async def test_kill_while_the_mint_holds_a_redemption_credits_it_once(
    node_process: MakeNodeProcess,
    mint: MintInfo,
    faulty: FaultyMint,
    ref_wallet: RefWallet,
    secrets: Secrets,
) -> None:
    proc = await node_process(cashu={"mints": [faulty.url]}).start()
    token = await moved_token(ref_wallet, mint, faulty.url, 60)
    secrets.add(token)
    faulty.swallow = {"/v1/swap"}  # the mint swaps, the node never hears
    pending = asyncio.create_task(call(proc, "GET", "/v1/wallet/balance", headers=auth(token)))
    await asyncio.wait_for(faulty.arrived("/v1/swap").wait(), 10)
    await asyncio.sleep(0.5)
    proc.kill()
    with pytest.raises(aiohttp.ClientError):
        await pending
    faulty.swallow = set()
    await proc.start()
    assert await balance_msat(proc, token) == 60_000
    await assert_books_intact(proc, [faulty.url], ref_wallet, [token])


async def test_kill_before_the_mint_saw_a_redemption_leaves_the_token_usable(
    node_process: MakeNodeProcess,
    mint: MintInfo,
    faulty: FaultyMint,
    ref_wallet: RefWallet,
    secrets: Secrets,
) -> None:
    proc = await node_process(cashu={"mints": [faulty.url]}).start()
    token = await moved_token(ref_wallet, mint, faulty.url, 30)
    secrets.add(token)
    faulty.hold_before = {"/v1/swap"}
    pending = asyncio.create_task(call(proc, "GET", "/v1/wallet/balance", headers=auth(token)))
    await asyncio.wait_for(faulty.arrived("/v1/swap").wait(), 10)
    proc.kill()
    with pytest.raises(aiohttp.ClientError):
        await pending
    faulty.hold_before = set()
    await proc.start()
    assert proc.scalar("SELECT COUNT(*) FROM accounts") == 0
    assert await balance_msat(proc, token) == 30_000  # the retry redeems it now
    await assert_books_intact(proc, [faulty.url], ref_wallet, [token])


async def test_kill_after_the_mint_signed_a_withdrawal_pays_it_once(
    node_process: MakeNodeProcess, mint: MintInfo, ref_wallet: RefWallet, secrets: Secrets
) -> None:
    proc = await node_process().start()
    token = await ref_wallet.token(mint.url, 100)
    secrets.add(token)
    assert await balance_msat(proc, token) == 100_000
    proc.stop()
    await proc.start(crash_at="send-after-swap")
    headers = {**auth(token), "Idempotency-Key": "crash-1"}
    with pytest.raises(aiohttp.ClientError):
        await call(proc, "POST", "/v1/wallet/withdraw", headers=headers, json={"amount": 40})
    assert await proc.wait_dead() == -signal.SIGKILL
    await proc.start()
    status, paid = await call(
        proc, "POST", "/v1/wallet/withdraw", headers=headers, json={"amount": 40}
    )
    assert status == 200 and paid["amount"] == 40
    secrets.add(paid["cashu_token"])
    assert await ref_wallet.receive(paid["cashu_token"]) == 40
    assert await balance_msat(proc, token) == 60_000
    assert await assert_books_intact(proc, [mint.url], ref_wallet, [token]) == 60


async def test_kill_while_the_mint_holds_a_withdrawal_pays_it_once(
    node_process: MakeNodeProcess,
    mint: MintInfo,
    faulty: FaultyMint,
    ref_wallet: RefWallet,
    secrets: Secrets,
) -> None:
    proc = await node_process(cashu={"mints": [faulty.url]}).start()
    token = await moved_token(ref_wallet, mint, faulty.url, 50)
    secrets.add(token)
    assert await balance_msat(proc, token) == 50_000
    faulty.swallow = {"/v1/swap"}
    headers = {**auth(token), "Idempotency-Key": "crash-2"}
    pending = asyncio.create_task(
        call(proc, "POST", "/v1/wallet/withdraw", headers=headers, json={"amount": 20})
    )
    await asyncio.wait_for(faulty.arrived("/v1/swap").wait(), 10)
    await asyncio.sleep(0.5)
    proc.kill()
    with pytest.raises(aiohttp.ClientError):
        await pending
    faulty.swallow = set()
    await proc.start()
    status, paid = await call(
        proc, "POST", "/v1/wallet/withdraw", headers=headers, json={"amount": 20}
    )
    assert status == 200 and paid["amount"] == 20
    assert await ref_wallet.receive(paid["cashu_token"]) == 20
    assert await balance_msat(proc, token) == 30_000
    await assert_books_intact(proc, [faulty.url], ref_wallet, [token])


async def test_kill_during_a_topup_credits_it_once(
    node_process: MakeNodeProcess, mint: MintInfo, ref_wallet: RefWallet, secrets: Secrets
) -> None:
    proc = await node_process().start()
    first, second = await ref_wallet.token(mint.url, 30), await ref_wallet.token(mint.url, 25)
    secrets.add(first, second)
    assert await balance_msat(proc, first) == 30_000
    proc.stop()
    await proc.start(crash_at="receive-after-swap")
    with pytest.raises(aiohttp.ClientError):
        await call(
            proc, "POST", "/v1/wallet/topup", headers=auth(first), json={"cashu_token": second}
        )
    assert await proc.wait_dead() == -signal.SIGKILL
    await proc.start()
    assert await balance_msat(proc, first) == 55_000
    status, body = await call(  # the client's retry: answered the same, not credited twice
        proc, "POST", "/v1/wallet/topup", headers=auth(first), json={"cashu_token": second}
    )
    assert status == 200 and body["amount_added"] == 25, body
    assert await balance_msat(proc, first) == 55_000
    assert await assert_books_intact(proc, [mint.url], ref_wallet, [first]) == 55


async def test_kill_during_create_strands_nothing_the_retry_gets_the_key(
    node_process: MakeNodeProcess, mint: MintInfo, ref_wallet: RefWallet, secrets: Secrets
) -> None:
    proc = await node_process().start(crash_at="receive-after-swap")
    token = await ref_wallet.token(mint.url, 45)
    secrets.add(token)
    with pytest.raises(aiohttp.ClientError):  # the mint signed; the key never reached the client
        await call(proc, "POST", "/v1/wallet/create", json={"cashu_token": token})
    assert await proc.wait_dead() == -signal.SIGKILL
    await proc.start()
    status, created = await call(proc, "POST", "/v1/wallet/create", json={"cashu_token": token})
    assert status == 200 and created["balance"] == 45, created
    key = created["api_key"]
    secrets.add(key)
    assert await balance_msat(proc, key) == 45_000
    assert proc.scalar("SELECT COUNT(*) FROM accounts") == 1  # credited once, to that key
    await assert_books_intact(proc, [mint.url], ref_wallet, [key])
    status, again = await call(proc, "POST", "/v1/wallet/create", json={"cashu_token": token})
    assert status == 400 and again["error"]["code"] == "token_spent"  # spent from: never again
