"""X-Cashu change is never lost with the answer: the paying token alone recovers it.

`GET /v1/wallet/change` with the same X-Cashu header (or the token as Bearer) lists every change
of that payment and what stays in its one-shot account; a client that sends an Idempotency-Key
with its paid request gets, on retry, the first request's change instead of token_spent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import openai
import pytest

import wallet as cashu
from tests.conftest import NodeHandle
from tests.support.mints import MintInfo, RefWallet
from tests.support.money import call
from tests.support.pg import BOTH_BACKENDS
from tests.support.sdk import async_openai
from tests.test_spine import Hello

pytestmark = BOTH_BACKENDS

PRICE = {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0, "max_output_tokens": 1000}
MODELS = [
    {"id": "test-model", "upstream": "mock", **PRICE},
    {"id": "test-slow", "upstream": "mock", **PRICE},
    # the mock answers a model named *hang* after 3 s: longer than the client below waits
    {"id": "test-patient", "upstream": "mock", "upstream_model": "test-hang", **PRICE},
]
PATIENT: Hello = {"model": "test-patient", "messages": [{"role": "user", "content": "hi"}]}
IMPATIENT = aiohttp.ClientTimeout(total=1)


@pytest.fixture
def change_node(
    make_node: Callable[..., NodeHandle], mint: MintInfo, fee_mint: MintInfo
) -> NodeHandle:
    return make_node(cashu={"mints": [mint.url, fee_mint.url]}, models=MODELS)


async def lost_answer(node: NodeHandle, token: str, **headers: str) -> None:
    """A paid request whose client gives up before the answer (the node carries on)."""
    with pytest.raises(asyncio.TimeoutError):
        await call(
            node, "POST", "/v1/chat/completions", x_cashu=token, headers=headers,
            json=PATIENT, timeout=IMPATIENT,
        )  # fmt: skip


async def changes_once_done(node: NodeHandle, token: str) -> dict[str, Any]:
    """The change listing, once the node has finished the lost request (about 3 s)."""
    deadline = time.monotonic() + 20
    listing: dict[str, Any]
    while True:
        status, _, listing = await call(node, "GET", "/v1/wallet/change", x_cashu=token)
        assert status == 200, listing
        if listing["changes"] or time.monotonic() > deadline:
            return listing
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("which", ["mint", "fee_mint"])
async def test_the_change_of_a_lost_answer_is_listed_with_the_token_alone(
    change_node: NodeHandle, ref_wallet: RefWallet, request: pytest.FixtureRequest, which: str
) -> None:
    paying_mint: MintInfo = request.getfixturevalue(which)
    token = await ref_wallet.token(paying_mint.url, 100)
    await lost_answer(change_node, token)
    listing = await changes_once_done(change_node, token)
    (change,) = listing["changes"]
    assert set(change) == {"request_id", "cashu_token", "amount", "mint", "fee_sat"}
    assert cashu.parse_token(change["cashu_token"]).amount == change["amount"] > 90
    assert change["mint"] == paying_mint.url and change["fee_sat"] == 0  # held proofs as they are
    assert 0 <= listing["balance_msat"] < 1000  # the sub-sat remainder stays, shown
    status, _, balance = await call(change_node, "GET", "/v1/wallet/balance", x_cashu=token)
    assert status == 200 and balance["balance_msat"] == listing["balance_msat"]
    assert (await call(change_node, "GET", "/v1/wallet/change", token))[2] == listing  # Bearer
    got = await ref_wallet.receive(change["cashu_token"])
    assert got <= change["amount"] and got * 1000 + listing["balance_msat"] <= 100_000
    assert (await call(change_node, "GET", "/v1/wallet/change", x_cashu=token))[2] == listing
    change_node.assert_clean()


async def test_a_retry_under_the_same_idempotency_key_gets_the_first_change(
    change_node: NodeHandle, mint: MintInfo, ref_wallet: RefWallet
) -> None:
    token = await ref_wallet.token(mint.url, 100)
    key = {"Idempotency-Key": "sdk-retry-1"}
    await lost_answer(change_node, token, **key)
    status, headers, body = await call(
        change_node, "POST", "/v1/chat/completions", x_cashu=token, headers=key, json=PATIENT
    )
    assert status == 409 and body["error"]["code"] == "request_in_progress", body
    assert int(headers["Retry-After"]) >= 1
    deadline = time.monotonic() + 20
    while body["error"]["code"] == "request_in_progress" and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        status, headers, body = await call(
            change_node, "POST", "/v1/chat/completions", x_cashu=token, headers=key, json=PATIENT
        )
    assert status == 409 and body["error"]["code"] == "duplicate_request", body
    original = headers["X-Original-Request-Id"]
    assert original in body["error"]["message"]
    change = headers["X-Cashu"]
    assert cashu.parse_token(change).amount > 90
    listing = (await call(change_node, "GET", "/v1/wallet/change", x_cashu=token))[2]
    assert [(c["request_id"], c["cashu_token"]) for c in listing["changes"]] == [(original, change)]
    again = await call(
        change_node, "POST", "/v1/chat/completions", x_cashu=token, headers=key, json=PATIENT
    )
    assert again[0] == 409 and again[1]["X-Cashu"] == change  # as often as asked
    for other in ({"Idempotency-Key": "another"}, {}):  # any other retry: spent, as before
        status, _, body = await call(
            change_node, "POST", "/v1/chat/completions", x_cashu=token, headers=other, json=PATIENT
        )
        assert status == 400 and body["error"]["code"] == "token_spent"
    assert await ref_wallet.receive(change) == cashu.parse_token(change).amount
    change_node.assert_clean()


async def test_the_change_of_a_dropped_stream_is_paid_by_the_listing(
    change_node: NodeHandle, mint: MintInfo, ref_wallet: RefWallet
) -> None:
    token = await ref_wallet.token(mint.url, 100)
    body = {
        "model": "test-slow",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 10,
        "stream": True,
        "mock": {"pause_s": 1.0},
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            change_node.url + "/v1/chat/completions", json=body, headers={"X-Cashu": token}
        ) as resp,
    ):
        assert resp.status == 200
        request_id = resp.headers["x-request-id"]
        await resp.content.readany()  # the first event; then the client goes away
    deadline = time.monotonic() + 20
    while change_node.ledger.open_reservations() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    listing = await changes_once_done(change_node, token)
    (change,) = listing["changes"]
    assert change["request_id"] == request_id
    assert await ref_wallet.receive(change["cashu_token"]) == change["amount"] > 90
    change_node.assert_clean()


async def test_one_token_sent_four_times_at_once_under_one_key_pays_once(
    change_node: NodeHandle, mint: MintInfo, ref_wallet: RefWallet
) -> None:
    token = await ref_wallet.token(mint.url, 100)
    key = {"Idempotency-Key": "burst"}
    answers = await asyncio.gather(
        *(
            call(change_node, "POST", "/v1/chat/completions", x_cashu=token, headers=key,
                 json=PATIENT)
            for _ in range(4)
        )
    )  # fmt: skip
    outcomes = sorted((s, b.get("error", {}).get("code")) for s, _, b in answers)
    assert outcomes[0] == (200, None), outcomes
    assert set(outcomes[1:]) <= {
        (409, "request_in_progress"),
        (409, "duplicate_request"),
        (400, "token_spent"),  # lost the race for the token before the key was kept
    }, outcomes
    (paid,) = [h for s, h, _ in answers if s == 200]
    cost = int(paid["X-Cost-Msat"])
    listing = (await call(change_node, "GET", "/v1/wallet/change", x_cashu=token))[2]
    assert [c["cashu_token"] for c in listing["changes"]] == [paid["X-Cashu"]]
    change = listing["changes"][0]["amount"]
    assert change * 1000 + listing["balance_msat"] + cost == 100_000
    assert await ref_wallet.receive(paid["X-Cashu"]) == change
    change_node.assert_clean()


async def test_the_listing_refuses_a_token_that_paid_nothing(
    change_node: NodeHandle, mint: MintInfo, ref_wallet: RefWallet
) -> None:
    token = await ref_wallet.token(mint.url, 10)
    status, _, body = await call(change_node, "GET", "/v1/wallet/change", x_cashu=token)
    assert status == 404 and body["error"]["code"] == "payment_not_found"
    status, _, body = await call(change_node, "GET", "/v1/wallet/change")
    assert status == 401 or status == 404, body
    assert await ref_wallet.receive(token) == 10  # looking did not redeem it


async def test_the_listing_is_for_x_cashu_payments_only(
    change_node: NodeHandle, mint: MintInfo, ref_wallet: RefWallet
) -> None:
    """A token used as an API key is an account like a key's: withdrawn explicitly, never
    paid out by a listing."""
    token = await ref_wallet.token(mint.url, 20)
    assert (await call(change_node, "GET", "/v1/wallet/balance", token))[0] == 200
    status, _, body = await call(change_node, "GET", "/v1/wallet/change", token)
    assert status == 404 and body["error"]["code"] == "payment_not_found"
    status, _, body = await call(change_node, "GET", "/v1/wallet/balance", x_cashu=token)
    assert status == 200 and body["balance_msat"] == 20_000
    assert change_node.balance(token) == 20_000


async def test_the_openai_sdk_retrying_after_a_timeout_gets_the_change_back(
    change_node: NodeHandle, mint: MintInfo, ref_wallet: RefWallet
) -> None:
    """The issue's case: the SDK times out and retries the same request. Under an
    Idempotency-Key it waits out `request_in_progress` by itself, then stops at
    `duplicate_request` (x-should-retry: false) with the change in hand."""
    token = await ref_wallet.token(mint.url, 100)
    api = async_openai(
        f"{change_node.url}/v1", "unused", **{"X-Cashu": token, "Idempotency-Key": "sdk-1"}
    ).with_options(timeout=1.0, max_retries=6)
    with pytest.raises(openai.ConflictError) as conflict:
        await api.chat.completions.create(**PATIENT)
    assert conflict.value.code == "duplicate_request"
    change = conflict.value.response.headers["x-cashu"]
    assert await ref_wallet.receive(change) > 90
    change_node.assert_clean()
