"""Mint faults during redemption (Bearer token, X-Cashu, topup, create) and payout (withdraw):
the mint down, too slow, answering 503 or junk before or after it acted. (X-Cashu change needs
no mint call: it is cut from the proofs the token was redeemed into.)

Each fault gives the client a clear answer at once (503 + Retry-After, with
`x-should-retry: false` once the mint may have taken the token; 502 when it refused; or the
right answer when the node could settle it by restore), and once the mint is back every retry
is credited or paid exactly once, the audit is clean and every balance is withdrawable."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.safety.conftest import (
    MakeNodeProcess,
    Secrets,
    assert_books_intact,
    auth,
    moved_token,
)
from tests.safety.faulty_mint import FaultyMint
from tests.safety.harness import NodeProcess
from tests.support.mints import MintInfo, RefWallet

HELLO = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}]}
MINT_TIMEOUT_S = 1.0
LATE_S = 2.0
ROUTES = ["bearer", "x-cashu", "topup", "create"]


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]  # case-insensitive, as HTTP's
    body: dict[str, Any]


async def send(proc: NodeProcess, method: str, path: str, **kwargs: Any) -> Answer:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
        session.request(method, proc.url + path, **kwargs) as resp,
    ):
        return Answer(resp.status, resp.headers.copy(), await resp.json(content_type=None))


async def redeem(proc: NodeProcess, route: str, token: str, base_key: str) -> Answer:
    if route == "bearer":
        return await send(proc, "GET", "/v1/wallet/balance", headers=auth(token))
    if route == "x-cashu":
        return await send(
            proc, "POST", "/v1/chat/completions", json=HELLO, headers={"X-Cashu": token}
        )
    if route == "topup":
        body = {"cashu_token": token}
        return await send(proc, "POST", "/v1/wallet/topup", json=body, headers=auth(base_key))
    return await send(proc, "POST", "/v1/wallet/create", json={"cashu_token": token})


async def withdraw(proc: NodeProcess, key: str, sat: int) -> Answer:
    headers = {**auth(key), "Idempotency-Key": "fault-test"}
    return await send(proc, "POST", "/v1/wallet/withdraw", json={"amount": sat}, headers=headers)


def set_fault(faulty: FaultyMint, fault: str) -> None:
    swap = {"/v1/swap"}
    if fault == "refuse":
        faulty.refuse = True
    elif fault == "late":
        faulty.late = {"/v1/swap": LATE_S}
    else:
        setattr(faulty, fault, swap)


# fault -> (status of a redemption, status of a withdrawal, x-should-retry)
EXPECTED = {
    "down": (503, 503, None),  # nothing listens: the mint saw nothing
    "refuse": (503, 503, "false"),  # a 5xx: the mint may have acted
    "late": (503, 503, "false"),  # beyond the node's mint timeout
    "garbage": (502, 502, None),  # junk before the mint acted: a refusal, nothing spent
    "garble_after": (200, 200, None),  # junk after it acted: settled by restore at once
    "drop_signature": (200, 200, None),  # one signature short: the same
}


def assert_clear(answer: Answer, status: int, should_retry: str | None) -> None:
    assert answer.status == status, answer
    if status == 200:
        return
    assert set(answer.body["error"]) == {"message", "type", "param", "code"}
    if status == 503:
        assert answer.headers["Retry-After"].isdigit()
    if should_retry is not None or status == 503:
        assert answer.headers.get("x-should-retry") == should_retry


@pytest.mark.parametrize("fault", list(EXPECTED))
async def test_a_mint_fault_is_a_clear_error_and_the_retry_settles_once(
    fault: str,
    node_process: MakeNodeProcess,
    mint: MintInfo,
    faulty: FaultyMint,
    ref_wallet: RefWallet,
    secrets: Secrets,
) -> None:
    proc = node_process(cashu={"mints": [faulty.url], "mint_timeout_s": MINT_TIMEOUT_S})
    await proc.start()
    base = await moved_token(ref_wallet, mint, faulty.url, 100)
    tokens = {r: await moved_token(ref_wallet, mint, faulty.url, 20) for r in ROUTES}
    secrets.add(base, *tokens.values())
    assert (await redeem(proc, "bearer", base, "")).status == 200
    redeem_status, withdraw_status, should_retry = EXPECTED[fault]

    await (faulty.down() if fault == "down" else asyncio.sleep(0))
    set_fault(faulty, fault)
    first = {r: await redeem(proc, r, tokens[r], base) for r in ROUTES}
    paid = await withdraw(proc, base, 30)
    for answer in first.values():
        assert_clear(answer, redeem_status, should_retry)
    assert_clear(paid, withdraw_status, should_retry)

    faulty.clear()
    await (faulty.up() if fault == "down" else asyncio.sleep(LATE_S if fault == "late" else 0))
    again = {r: await redeem(proc, r, tokens[r], base) for r in ROUTES}
    if redeem_status == 200:  # an X-Cashu token pays for one request: the first one did
        assert again.pop("x-cashu").body["error"]["code"] == "token_spent"
    assert all(a.status == 200 for a in again.values()), again
    if redeem_status == 200:
        assert again["create"].body["api_key"] == first["create"].body["api_key"]
    key = again["create"].body["api_key"]
    change = first["x-cashu"] if redeem_status == 200 else again["x-cashu"]
    secrets.add(key, change.headers.get("X-Cashu", ""))
    assert again["bearer"].body["balance_msat"] == 20_000
    assert again["create"].body["balance_msat"] == 20_000
    assert again["topup"].body["amount_added"] == 20
    assert 0 < await ref_wallet.receive(change.headers["X-Cashu"]) < 20

    paid = await withdraw(proc, base, 30)  # the same Idempotency-Key: one payout in all
    assert paid.status == 200, paid
    secrets.add(paid.body["cashu_token"])
    assert await ref_wallet.receive(paid.body["cashu_token"]) == 30
    keys = [base, tokens["bearer"], key]
    assert await assert_books_intact(proc, [faulty.url], ref_wallet, keys) == 90 + 20 + 20


async def test_change_is_paid_without_the_mint_even_when_it_turns_slow(
    node_process: MakeNodeProcess,
    mint: MintInfo,
    faulty: FaultyMint,
    ref_wallet: RefWallet,
    secrets: Secrets,
) -> None:
    """An X-Cashu token is redeemed into denominations the change can be cut from, so the
    change needs no second swap: a mint slow after the redemption delays nothing."""
    proc = node_process(cashu={"mints": [faulty.url], "mint_timeout_s": MINT_TIMEOUT_S})
    await proc.start()
    token = await moved_token(ref_wallet, mint, faulty.url, 40)
    secrets.add(token)
    faulty.late, faulty.skip = {"/v1/swap": LATE_S}, 1  # the redemption passes, then it is late
    swaps_before = faulty.seen.count("/v1/swap")
    answer = await send(
        proc, "POST", "/v1/chat/completions", json=HELLO, headers={"X-Cashu": token}
    )
    assert answer.status == 200, answer
    assert faulty.seen.count("/v1/swap") == swaps_before + 1  # the redemption, nothing more
    change = answer.headers["X-Cashu"]
    secrets.add(change)
    faulty.clear()
    request_id = answer.headers["x-request-id"]
    claim = await send(proc, "GET", f"/v1/wallet/change/{request_id}", headers={"X-Cashu": token})
    assert claim.body.get("cashu_token") == change  # the same token, not more
    cost_msat = int(answer.headers["X-Cost-Msat"])
    assert await ref_wallet.receive(change) == (40_000 - cost_msat) // 1000
    rc, out = proc.audit()
    assert rc == 0, out
    assert proc.pending_wallet_work() == 0
