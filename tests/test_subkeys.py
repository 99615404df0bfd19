"""Sub-keys over HTTP with the OpenAI SDK: a capped key drawing on its parent's balance, which
concurrent requests cannot push past its limit; periods, expiry, model lists, revocation; the
routstr-core shapes of /v1/balance/child-key and /v1/balance/history."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import openai
import pytest

from node.money.keys import MAX_SUBKEYS
from tests.conftest import NodeHandle
from tests.support.mints import MintInfo, RefWallet
from tests.support.money import call
from tests.support.pg import BOTH_BACKENDS
from tests.support.sdk import async_openai

pytestmark = BOTH_BACKENDS

NO_LIMITS = {"per_minute": 0, "per_hour": 0, "per_day": 0}
HELLO: dict[str, Any] = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}]}
# an answer as long as it may be: what a request costs is near what it reserves
LONG: dict[str, Any] = {"max_tokens": 300, "extra_body": {"mock": {"completion_tokens": 300}}}


@pytest.fixture
def keys_node(make_node: Callable[..., NodeHandle], mint: MintInfo) -> NodeHandle:
    return make_node(cashu={"mints": [mint.url]}, limits=NO_LIMITS)


async def funded_key(node: NodeHandle, ref_wallet: RefWallet, mint: MintInfo, sat: int) -> str:
    token = await ref_wallet.token(mint.url, sat)
    status, _, made = await call(node, "POST", "/v1/wallet/create", json={"cashu_token": token})
    assert status == 200, made
    return str(made["api_key"])


async def sub_key(node: NodeHandle, parent: str, **rules: Any) -> dict[str, Any]:
    made: dict[str, Any]
    status, _, made = await call(node, "POST", "/v1/keys", parent, json=rules)
    assert status == 201, made
    assert made["api_key"].startswith("sk-") and made["id"].startswith("key_")
    return made


async def chat(node: NodeHandle, key: str, **extra: Any) -> tuple[int, Any]:
    api = async_openai(f"{node.url}/v1", key)
    try:
        raw = await api.chat.completions.with_raw_response.create(**{**HELLO, **extra})
    except openai.APIStatusError as exc:
        return exc.status_code, {"error": exc.body}  # the SDK unwraps the envelope
    return 200, int(raw.headers["x-cost-msat"])


async def test_30_concurrent_requests_never_pass_a_sub_keys_limit(
    keys_node: NodeHandle, ref_wallet: RefWallet, mint: MintInfo
) -> None:
    parent = await funded_key(keys_node, ref_wallet, mint, 200)
    status, cost = await chat(keys_node, parent, **LONG)
    assert status == 200
    limit = 10 * cost  # ten requests like the first one
    child = await sub_key(keys_node, parent, name="agent", spend_limit_msat=limit)
    before = keys_node.balance(parent)
    results = await asyncio.gather(*(chat(keys_node, child["api_key"], **LONG) for _ in range(30)))
    codes = Counter(status for status, _ in results)
    assert set(codes) <= {200, 402} and codes[200] >= 1 and codes[402] >= 1, codes
    refused = [body for status, body in results if status == 402]
    assert all(b["error"]["code"] == "key_limit_reached" for b in refused), refused
    assert f"{limit} msat" in refused[0]["error"]["message"]  # the message names the limit
    while (await chat(keys_node, child["api_key"], **LONG))[0] == 200:
        pass  # one by one, until the limit says no (each asks for less as it nears)
    spent = before - keys_node.balance(parent)
    assert 0 < spent <= limit  # never past the limit, and from the parent's balance
    status, _, listing = await call(keys_node, "GET", "/v1/keys", parent)
    assert status == 200
    (seen,) = listing["data"]
    assert seen["spent_msat"] == spent and seen["remaining_msat"] == limit - spent
    assert seen["name"] == "agent" and seen["kind"] == "subkey"
    status, _, usage = await call(keys_node, "GET", "/v1/usage", child["api_key"])
    assert usage["totals"]["cost_msat"] == spent  # the sub-key sees its own requests
    status, _, me = await call(keys_node, "GET", "/v1/me", child["api_key"])
    assert status == 200 and me["kind"] == "subkey" and me["spend_limit_msat"] == limit
    assert me["balance_msat"] == limit - spent and me["withdrawable_msat"] == 0
    for path in ("/v1/wallet/balance", "/v1/balance/info", "/v1/balance"):  # as routstr's
        status, _, shown = await call(keys_node, "GET", path, child["api_key"])
        assert status == 200 and shown["balance_msat"] == limit - spent, (path, shown)
    keys_node.assert_clean()


async def test_the_period_resets_and_the_parent_can_reset_it(
    keys_node: NodeHandle, ref_wallet: RefWallet, mint: MintInfo
) -> None:
    parent = await funded_key(keys_node, ref_wallet, mint, 100)
    child = await sub_key(keys_node, parent, spend_limit_msat=2000, limit_period="day")
    key = child["api_key"]
    number = int(child["id"].removeprefix("key_"))
    # the key was made a day ago, less 15 s: its day ends in 15 s (the test's clock)
    day_ends = int(time.time()) + 15
    with keys_node.db.transaction() as conn:
        conn.execute(
            "UPDATE key_rules SET created_at = ? WHERE account_id = ?",
            (day_ends - 86_400, number),
        )
    while (await chat(keys_node, key, **LONG))[0] == 200:
        pass
    status, body = await chat(keys_node, key, **LONG)
    assert status == 402 and body["error"]["code"] == "key_limit_reached"
    assert time.time() < day_ends, "the machine was too slow to spend the limit within 15 s"
    await asyncio.sleep(day_ends - time.time() + 0.5)  # a new day
    assert (await chat(keys_node, key, **LONG))[0] == 200
    while (await chat(keys_node, key, **LONG))[0] == 200:
        pass
    status, _, reset = await call(
        keys_node, "POST", "/v1/balance/child-key/reset", parent, json={"child_key": key}
    )
    assert status == 200 and reset == {
        "success": True,
        "message": "Child key balance reset successfully.",
    }
    assert (await chat(keys_node, key, **LONG))[0] == 200
    keys_node.assert_clean()


async def test_a_model_list_names_a_model_by_its_id_or_any_alias(
    make_node: Callable[..., NodeHandle], ref_wallet: RefWallet, mint: MintInfo
) -> None:
    """A key limited to a model's alias may use the model by its id or any alias, as a key
    limited to its id may; no other model."""
    price = {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0, "max_output_tokens": 1000}
    models = [
        {"id": "test-model", "aliases": ["my-alias", "mine"], **price},
        {"id": "test-slow", **price},
    ]
    node = make_node(cashu={"mints": [mint.url]}, limits=NO_LIMITS, models=models)
    parent = await funded_key(node, ref_wallet, mint, 100)
    for allowed in (["my-alias"], ["mine"], ["test-model"], ["other", "mine"]):
        key = (await sub_key(node, parent, models=allowed))["api_key"]
        for name in ("test-model", "my-alias", "mine"):
            assert (await chat(node, key, model=name))[0] == 200, (allowed, name)
        status, body = await chat(node, key, model="test-slow")
        assert status == 403 and body["error"]["code"] == "model_not_allowed", (allowed, body)
    node.assert_clean()


async def test_expiry_model_list_and_revocation(
    keys_node: NodeHandle, ref_wallet: RefWallet, mint: MintInfo
) -> None:
    parent = await funded_key(keys_node, ref_wallet, mint, 100)
    expires = int(time.time()) + 8  # room for a loaded machine before it passes
    child = await sub_key(keys_node, parent, models=["test-model"], expires_at=expires)
    key = child["api_key"]
    assert (await chat(keys_node, key))[0] == 200
    status, body = await chat(keys_node, key, model="test-slow")
    assert status == 403 and body["error"]["code"] == "model_not_allowed"
    assert "test-slow" in body["error"]["message"]
    await asyncio.sleep(expires - time.time() + 0.2)
    status, body = await chat(keys_node, key)
    assert status == 401 and body["error"]["code"] == "key_expired"
    # a later expiry brings it back; revocation takes effect on the next request
    status, _, changed = await call(
        keys_node, "PATCH", f"/v1/keys/{child['id']}", parent, json={"expires_at": None}
    )
    assert status == 200 and changed["expires_at"] is None
    assert (await chat(keys_node, key))[0] == 200
    status, _, gone = await call(keys_node, "DELETE", f"/v1/keys/{child['id']}", parent)
    assert status == 200 and gone["deleted"] is True
    status, body = await chat(keys_node, key)
    assert status == 401 and body["error"]["code"] == "key_revoked"
    keys_node.assert_clean()


async def test_a_sub_key_cannot_withdraw_top_up_or_make_sub_keys(
    keys_node: NodeHandle, ref_wallet: RefWallet, mint: MintInfo
) -> None:
    parent = await funded_key(keys_node, ref_wallet, mint, 50)
    key = (await sub_key(keys_node, parent))["api_key"]
    token = await ref_wallet.token(mint.url, 5)
    for method, path, body in [
        ("POST", "/v1/wallet/withdraw", {"amount": 1}),
        ("POST", "/v1/wallet/refund", {}),
        ("POST", "/v1/wallet/topup", {"cashu_token": token}),
        ("POST", "/v1/keys", {"name": "grandchild"}),
        ("POST", "/v1/balance/child-key", {"count": 1}),
        ("GET", "/v1/balance/history", None),
    ]:
        status, _, answer = await call(keys_node, method, path, key, json=body)
        assert status == 403 and answer["error"]["code"] == "subkey_not_allowed", (path, answer)
    assert keys_node.balance(parent) == 50_000
    assert await ref_wallet.receive(token) == 5  # the topup's token was never taken
    other = await funded_key(keys_node, ref_wallet, mint, 10)
    status, _, answer = await call(keys_node, "GET", "/v1/keys", other)
    assert status == 200 and answer["data"] == []  # another parent sees none of them
    child_id = (await sub_key(keys_node, parent))["id"]
    status, _, answer = await call(keys_node, "DELETE", f"/v1/keys/{child_id}", other)
    assert status == 404 and answer["error"]["code"] == "key_not_found"
    for odd in ("key_%C2%B2", "key_" + "9" * 30, "nothing"):
        status, _, answer = await call(keys_node, "GET", f"/v1/keys/{odd}", parent)
        assert status == 404 and answer["error"]["code"] == "key_not_found"
    for bad in (
        {"spend_limit_msat": -1},
        {"limit_period": "year"},
        {"expires_at": "soon"},
        {"models": "test-model"},
        {"per_minute": 0},
        {"name": 5},
    ):
        status, _, answer = await call(keys_node, "POST", "/v1/keys", parent, json=bad)
        assert status == 400 and answer["error"]["param"] == next(iter(bad)), answer


async def test_routstr_child_key_and_history_shapes(
    keys_node: NodeHandle, ref_wallet: RefWallet, mint: MintInfo
) -> None:
    parent = await funded_key(keys_node, ref_wallet, mint, 100)
    status, _, made = await call(
        keys_node,
        "POST",
        "/v1/balance/child-key",
        parent,
        json={"count": 3, "balance_limit": 5000, "balance_limit_reset": "daily",
              "validity_date": int(time.time()) + 3600},
    )  # fmt: skip
    assert status == 200, made
    assert {"api_keys", "count", "cost_msats", "cost_sats", "parent_balance"} <= set(made)
    assert made["count"] == 3 and len(set(made["api_keys"])) == 3 and made["cost_msats"] == 0
    assert made["parent_balance"] == 100_000
    assert all(k.startswith("sk-") for k in made["api_keys"])
    status, _, listing = await call(keys_node, "GET", "/v1/keys", parent)
    assert [(k["spend_limit_msat"], k["limit_period"]) for k in listing["data"]] == [
        (5000, "day")
    ] * 3
    assert (await chat(keys_node, made["api_keys"][0], max_tokens=5))[0] == 200
    for bad in ({"count": 0}, {"count": 51}, {"count": "3"}, {}):
        status, _, answer = await call(keys_node, "POST", "/v1/balance/child-key", parent, json=bad)
        assert status == 400 and answer["error"]["param"] == "count"
    # history: ecash in and out, routstr-core's shape
    status, _, paid = await call(
        keys_node, "POST", "/v1/wallet/withdraw", parent, json={"amount": 10}
    )
    assert status == 200, paid
    status, _, history = await call(keys_node, "GET", "/v1/balance/history", parent)
    assert status == 200 and set(history) == {"transactions"}
    fields = {"id", "type", "source", "amount", "unit", "mint_url", "created_at", "collected",
              "swept"}  # fmt: skip
    assert all(fields <= set(t) for t in history["transactions"])
    assert [(t["type"], t["amount"]) for t in history["transactions"]][-1] == ("in", 100)
    assert ("out", 10) in [(t["type"], t["amount"]) for t in history["transactions"]]
    assert all(t["mint_url"] == mint.url for t in history["transactions"])
    status, _, balance = await call(keys_node, "GET", "/v1/balance", parent)
    assert status == 200 and balance["balance_msat"] == keys_node.balance(parent)
    assert balance["spend_total_msat"] > 0
    keys_node.assert_clean()


async def test_any_key_can_be_created_with_an_expiry_and_limit(
    keys_node: NodeHandle, ref_wallet: RefWallet, mint: MintInfo
) -> None:
    token = await ref_wallet.token(mint.url, 50)
    expires_at = int(time.time()) + 8
    body = {"cashu_token": token, "expires_at": expires_at, "spend_limit_msat": 10**6}
    status, _, made = await call(keys_node, "POST", "/v1/wallet/create", json=body)
    assert status == 200, made
    key = made["api_key"]
    status, _, me = await call(keys_node, "GET", "/v1/me", key)
    assert me["kind"] == "key" and me["expires_at"] == body["expires_at"] and not me["expired"]
    assert (await chat(keys_node, key))[0] == 200
    await asyncio.sleep(expires_at - time.time() + 0.2)
    status, answer = await chat(keys_node, key)
    assert status == 401 and answer["error"]["code"] == "key_expired"
    status, _, paid = await call(keys_node, "POST", "/v1/wallet/withdraw", key, json={})
    assert status == 200 and paid["amount"] > 0  # an expired key's balance still comes out
    bad = await ref_wallet.token(mint.url, 5)
    status, _, answer = await call(
        keys_node, "POST", "/v1/wallet/create", json={"cashu_token": bad, "expires_at": "x"}
    )
    assert status == 400 and answer["error"]["param"] == "expires_at"
    assert await ref_wallet.receive(bad) == 5  # refused before anything was redeemed


async def test_a_sub_keys_requests_per_minute(
    keys_node: NodeHandle, ref_wallet: RefWallet, mint: MintInfo
) -> None:
    parent = await funded_key(keys_node, ref_wallet, mint, 50)
    key = (await sub_key(keys_node, parent, per_minute=2))["api_key"]
    assert [(await chat(keys_node, key))[0] for _ in range(2)] == [200, 200]
    status, body = await chat(keys_node, key)
    assert status == 429 and "2 requests per minute" in body["error"]["message"]
    assert (await chat(keys_node, parent))[0] == 200  # the parent is not held by it
    keys_node.assert_clean()


async def test_a_key_makes_at_most_max_subkeys_free_of_charge(
    keys_node: NodeHandle, ref_wallet: RefWallet, mint: MintInfo
) -> None:
    """Sub-keys cost nothing: without a bound, any key could fill the database with them."""
    parent = await funded_key(keys_node, ref_wallet, mint, 10)
    path = "/v1/balance/child-key"
    for _ in range(MAX_SUBKEYS // 50):
        status, _, made = await call(keys_node, "POST", path, parent, json={"count": 50})
        assert status == 200, made
    status, _, refused = await call(keys_node, "POST", "/v1/keys", parent, json={})
    assert status == 409 and refused["error"]["code"] == "too_many_subkeys", refused
    status, _, refused = await call(keys_node, "POST", path, parent, json={"count": 1})
    assert status == 409 and refused["error"]["code"] == "too_many_subkeys", refused
    count = "SELECT COUNT(*) FROM key_rules WHERE parent_id IS NOT NULL"
    row = keys_node.db.query_one(count)
    assert row is not None and row[0] == MAX_SUBKEYS
    keys_node.assert_clean()
