"""Payments at their edges: tokens the mint finds invalid, absurd amounts, payouts in doubt."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

import wallet as cashu
from tests.conftest import NodeHandle
from tests.support.mints import MintInfo, RefWallet
from tests.support.pg import BOTH_BACKENDS
from tests.support.proxy import MintProxy

pytestmark = BOTH_BACKENDS

HELLO: dict[str, Any] = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}]}
CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=45)


@pytest.fixture
def paid_node(
    make_node: Callable[..., NodeHandle], mint: MintInfo, fee_mint: MintInfo
) -> NodeHandle:
    return make_node(cashu={"mints": [mint.url, fee_mint.url]})


async def http(node: NodeHandle, method: str, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
    async with (
        aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as session,
        session.request(method, node.url + path, **kwargs) as resp,
    ):
        return resp.status, resp.headers, await resp.json(content_type=None)


def forged(token: str, **changes: Any) -> str:
    parsed = cashu.parse_token(token)
    return cashu.serialize_v4(parsed.with_proofs([replace(p, **changes) for p in parsed.proofs]))


G = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"  # a valid point


async def test_token_the_mint_finds_invalid_is_a_4xx(
    paid_node: NodeHandle, mint: MintInfo, ref_wallet: RefWallet
) -> None:
    """A forged signature (mint code 10001) or an amount no key signs (code 0) is a bad token,
    the client's fault: 400 token_invalid, not the 502 of a failing mint."""
    token = await ref_wallet.token(mint.url, 8)
    for bad in (forged(token, c=G), forged(token, amount=3)):
        for headers in ({"Authorization": f"Bearer {bad}"}, {"X-Cashu": bad}):
            status, _, body = await http(
                paid_node, "POST", "/v1/chat/completions", json=HELLO, headers=headers
            )
            assert (status, body["error"]["code"]) == (400, "token_invalid")
        status, _, body = await http(
            paid_node, "POST", "/v1/wallet/create", json={"cashu_token": bad}
        )
        assert (status, body["error"]["code"]) == (400, "token_invalid")
    assert await ref_wallet.receive(token) == 8  # the real one is untouched
    paid_node.assert_clean()


async def test_token_worth_more_than_all_bitcoin_is_a_4xx(
    paid_node: NodeHandle, mint: MintInfo, ref_wallet: RefWallet
) -> None:
    """msat of such an amount overflow a 64-bit column: it was a 500 before the mint was asked."""
    token = await ref_wallet.token(mint.url, 8)
    huge = forged(token, amount=2**60)
    for headers in ({"Authorization": f"Bearer {huge}"}, {"X-Cashu": huge}):
        status, _, body = await http(
            paid_node, "POST", "/v1/chat/completions", json=HELLO, headers=headers
        )
        assert (status, body["error"]["code"]) == (400, "token_invalid")
    status, _, body = await http(paid_node, "POST", "/v1/wallet/create", json={"cashu_token": huge})
    assert (status, body["error"]["code"]) == (400, "token_invalid")
    paid_node.assert_clean()


async def test_keyless_withdraw_left_in_doubt_can_still_be_collected(
    make_node: Callable[..., NodeHandle], mint: MintInfo, ref_wallet: RefWallet
) -> None:
    """The mint takes the payout's swap and its answer is lost: the account is debited and the
    node settles the payout later. A client that sent no Idempotency-Key must still be able to
    fetch that token, or the withdrawn sats are gone for it."""
    proxy = await MintProxy(mint.url).start()
    try:
        node = make_node(cashu={"mints": [proxy.url], "mint_timeout_s": 1.0})
        token = cashu.parse_token(await ref_wallet.token(mint.url, 20))
        key = cashu.serialize_v4(token.with_mint(proxy.url))
        auth = {"Authorization": f"Bearer {key}"}
        assert (await http(node, "GET", "/v1/wallet/balance", headers=auth))[0] == 200
        proxy.swallow = {"/v1/swap"}  # the proofs held are 4 + 16: 3 sat needs a swap
        status, headers, body = await http(
            node, "POST", "/v1/wallet/withdraw", headers=auth, json={"amount": 3}
        )
        assert (status, body["error"]["code"]) == (503, "mint_unavailable")
        assert node.balance(key) == 17_000  # debited: the payout is in doubt
        proxy.swallow = set()
        retry = {**auth, "Idempotency-Key": headers["Idempotency-Key"]}
        status, _, paid = await http(
            node, "POST", "/v1/wallet/withdraw", headers=retry, json={"amount": 3}
        )
        assert status == 200 and paid["amount"] == 3
        assert await ref_wallet.receive(paid["cashu_token"]) == 3
        assert node.balance(key) == 17_000
        node.assert_clean()
    finally:
        await proxy.stop()
