"""Routstr's clients, replayed over HTTP from their documented rules (routstr-core's field
names and units): balances in msat with the key that opens them, `{"msats"}` top-ups (also as
`?cashu_token=`), refunds as `{"token", "sats"}` and their errors, and the lazy refund that
recovers a streamed X-Cashu payment's change with the paying token alone.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from tests.conftest import NodeHandle
from tests.interop.flows import (
    CLIENT_TIMEOUT,
    HELLO,
    bearer,
    change_due,
    http,
    ok,
)
from tests.support.cashu_ts import CashuTs
from tests.support.mints import MintInfo


async def test_apikey_mode_balance_topup_and_refund_shapes(
    wallet_node: NodeHandle, cashu_ts: CashuTs, mint: MintInfo
) -> None:
    token = await cashu_ts.token(mint.url, 20)
    created = ok(
        await http(
            wallet_node, "GET", "/v1/balance/create", params={"initial_balance_token": token}
        )
    )
    key = created["api_key"]
    for path in ("/v1/balance/info", "/v1/wallet/info", "/v1/wallet/"):
        info = ok(await http(wallet_node, "GET", path, headers=bearer(key)))
        assert info["api_key"] == key
        assert info["balance"] == wallet_node.balance(key) == 20_000  # msat, as routstr-core
        assert info["reserved"] == 0
    more = await cashu_ts.token(mint.url, 8)
    added = ok(
        await http(
            wallet_node,
            "POST",
            "/v1/wallet/topup",
            params={"cashu_token": more},
            headers=bearer(key),
        )
    )
    assert added["msats"] == 8_000 and wallet_node.balance(key) == 28_000
    refund = ok(await http(wallet_node, "POST", "/v1/balance/refund", headers=bearer(key)))
    assert refund["sats"] == "28" and await cashu_ts.receive(mint.url, refund["token"]) == 28
    again = await http(wallet_node, "POST", "/v1/balance/refund", headers=bearer(key))
    assert again.status == 400 and "No balance to refund" in again.body["error"]["message"]
    unknown = await http(wallet_node, "POST", "/v1/wallet/refund", headers=bearer("sk-nope"))
    assert unknown.status == 401 and unknown.body["error"]["code"] == "key_not_found"
    wallet_node.assert_clean()


async def test_token_keyed_account_info_names_its_key(
    wallet_node: NodeHandle, cashu_ts: CashuTs, mint: MintInfo
) -> None:
    token = await cashu_ts.token(mint.url, 10)
    info = ok(await http(wallet_node, "GET", "/v1/wallet/info", headers=bearer(token)))
    assert info["api_key"] == token and info["balance"] == 10_000


async def stream_ignoring_change(node: NodeHandle, token: str, started: asyncio.Event) -> int:
    """A streamed X-Cashu call as the Routstr SDK makes it: change read from the header only
    (there is none on a stream), the in-band `x_cashu` ignored; the cost from the last chunk."""
    body = {**HELLO, "model": "test-slow", "stream": True, "mock": {"pause_s": 1.5}}
    cost = None
    async with (
        aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as session,
        session.post(
            node.url + "/v1/chat/completions", json=body, headers={"X-Cashu": token}
        ) as resp,
    ):
        assert resp.status == 200 and "X-Cashu" not in resp.headers
        async for raw in resp.content:
            started.set()
            line = raw.decode().strip()
            if line.startswith("data:") and line != "data: [DONE]":
                chunk: dict[str, Any] = json.loads(line.removeprefix("data:"))
                cost = (chunk.get("usage") or {}).get("cost_msat", cost)
    assert cost is not None
    return int(cost)


async def test_lazy_refund_recovers_a_streamed_payments_change(
    wallet_node: NodeHandle, cashu_ts: CashuTs, mint: MintInfo
) -> None:
    token = await cashu_ts.token(mint.url, 40)
    started = asyncio.Event()
    streaming = asyncio.create_task(stream_ignoring_change(wallet_node, token, started))
    await started.wait()
    early = await http(wallet_node, "POST", "/v1/wallet/refund", headers={"X-Cashu": token})
    assert early.status == 425 and early.headers["Retry-After"]
    cost = await streaming
    swept = ok(await http(wallet_node, "POST", "/v1/wallet/refund", headers={"X-Cashu": token}))
    assert swept["sats"] == str(change_due(40, cost))
    assert await cashu_ts.receive(mint.url, swept["token"]) == change_due(40, cost)
    assert wallet_node.balance(token) == (40_000 - cost) % 1000
    wallet_node.assert_clean()


async def test_lazy_refund_of_an_unknown_payment_is_404(
    wallet_node: NodeHandle, cashu_ts: CashuTs, mint: MintInfo
) -> None:
    token = await cashu_ts.token(mint.url, 5)  # never paid with
    answer = await http(wallet_node, "POST", "/v1/balance/refund", headers={"X-Cashu": token})
    assert answer.status == 404 and "Refund not found" in answer.body["error"]["message"]
    assert await cashu_ts.receive(mint.url, token) == 5  # untouched


async def test_models_list_numbers_and_the_max_costs(wallet_node: NodeHandle) -> None:
    listing = ok(await http(wallet_node, "GET", "/v1/models"))
    model = next(m for m in listing["data"] if m["id"] == "test-model")
    assert model["name"] and model["architecture"]["output_modalities"] == ["text"]
    assert model["top_provider"]["max_completion_tokens"] == model["max_output_tokens"]
    sats = model["sats_pricing"]
    for prices in (model["pricing"], sats):
        assert all(isinstance(v, int | float) for v in prices.values()), prices
    context, longest = model["context_length"], model["max_output_tokens"]
    assert sats["max_cost"] >= (context - longest) * sats["prompt"] + longest * sats["completion"]
    assert sats["max_prompt_cost"] >= context * sats["prompt"]
    assert sats["max_completion_cost"] >= longest * sats["completion"]


async def deposit_sat(node: NodeHandle, model_id: str) -> int:
    """What a Routstr client deposits for a request: the model's max_cost, in whole sat."""
    listing = ok(await http(node, "GET", "/v1/models"))
    model = next(m for m in listing["data"] if m["id"] == model_id)
    return -int(-model["sats_pricing"]["max_cost"] // 1)


async def test_the_deposit_covers_a_short_and_a_long_prompt_and_costs_add_up(
    wallet_node: NodeHandle, cashu_ts: CashuTs, mint: MintInfo
) -> None:
    deposit = await deposit_sat(wallet_node, "test-model")
    for text in ("hi", "a" * 90_000):
        token = await cashu_ts.token(mint.url, deposit)
        body = {"model": "test-model", "messages": [{"role": "user", "content": text}]}
        answer = await http(
            wallet_node, "POST", "/v1/chat/completions", json=body, headers={"X-Cashu": token}
        )
        assert answer.status == 200, (answer.status, answer.body)
        cost = int(answer.headers["X-Routstr-Cost-Msats"])
        assert cost == int(answer.headers["X-Cost-Msat"]) == answer.body["usage"]["cost_msat"]
        parts = ("X-Routstr-Input-Cost-Msats", "X-Routstr-Output-Cost-Msats")
        assert sum(int(answer.headers[h]) for h in parts) == cost
        assert float(answer.headers["X-Routstr-Cost-Usd"]) == answer.body["usage"]["cost"]
        assert answer.body["usage"]["cost_sats"] == cost / 1000
        ids = {k.lower(): v for k, v in answer.headers.items()}
        assert ids["x-routstr-request-id"] == ids["x-request-id"]
        change = answer.headers["X-Cashu"]
        assert await cashu_ts.receive(mint.url, change) == change_due(deposit, cost)
        assert wallet_node.balance(token) == (deposit * 1000 - cost) % 1000
    wallet_node.assert_clean()


async def test_streamed_cost_is_on_the_last_chunk_in_sats(
    wallet_node: NodeHandle, cashu_ts: CashuTs, mint: MintInfo
) -> None:
    token = await cashu_ts.token(mint.url, 10)
    body = {**HELLO, "stream": True}
    usages = []
    async with (
        aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as session,
        session.post(
            wallet_node.url + "/v1/chat/completions", json=body, headers={"X-Cashu": token}
        ) as resp,
    ):
        async for raw in resp.content:
            line = raw.decode().strip()
            if line.startswith("data:") and line != "data: [DONE]":
                usages.append(json.loads(line.removeprefix("data:")).get("usage"))
    usage = usages[-1]
    assert usage["cost_sats"] == usage["cost_msat"] / 1000
    assert wallet_node.balance(token) == (10_000 - usage["cost_msat"]) % 1000
