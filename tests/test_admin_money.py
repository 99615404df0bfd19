"""The admin's money, against a real Nutshell mint: accounts, solvency, audit, earnings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import wallet as cashu
from node.errors import Conflict
from node.parts import PARTS
from tests.conftest import NodeHandle
from tests.support.admin_client import PASSWORD, AdminClient
from tests.support.money import call

FEE_MSAT = 5000  # a flat fee per request, so a couple of requests earn whole sats
HELLO = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


@pytest.fixture
def money_node(make_node: Callable[..., NodeHandle], mint: Any) -> NodeHandle:
    return make_node(
        node={"admin_password": PASSWORD},
        cashu={"mints": [mint.url]},
        pricing={"request_fee_msat": FEE_MSAT},
    )


async def chat(node: NodeHandle, key: str) -> int:
    status, headers, body = await call(node, "POST", "/v1/chat/completions", key, json=HELLO)
    assert status == 200, body
    return int(headers["x-cost-msat"])


async def test_accounts_entries_and_totals(money_node: NodeHandle) -> None:
    key = money_node.new_key(50_000)
    money_node.new_key(7_000)
    cost = await chat(money_node, key)
    async with AdminClient(money_node.url) as client:
        await client.login()
        listing = await client.get("/admin/api/accounts")
        first = listing["accounts"][0]  # most recently used first
        assert first["balance_msat"] == 50_000 - cost and first["reserved_msat"] == 0
        assert first["requests"] == 1 and first["last_used_at"] is not None
        assert listing["totals"] == {
            "accounts": 2,
            "balance_msat": 57_000 - cost,
            "reserved_msat": 0,
            "credit_msat": 57_000 - cost,  # granted keys: operator credit, charged first
            "ecash_balance_msat": 0,
            "remainders_msat": 0,
            "requests": 1,
        }
        assert first["credit_msat"] == 50_000 - cost
        entries = await client.get(f"/admin/api/accounts/{first['id']}/entries")
        assert [(e["kind"], e["amount_msat"]) for e in entries["entries"]] == [
            ("charge", -cost),
            ("grant", 50_000),
        ]
        assert (await client.call("GET", "/admin/api/accounts/999/entries"))[0] == 404
        series = await client.get("/admin/api/stats?hours=2&bucket_s=600")
        last = series["points"][-1]
        assert last["requests"] == 1 and last["revenue_msat"] == cost
        assert last["balances_msat"] == 57_000 - cost


async def test_earnings_are_withdrawn_as_a_token_and_never_more(
    money_node: NodeHandle, mint: Any, ref_wallet: Any
) -> None:
    token = await ref_wallet.token(mint.url, 100)
    cost = await chat(money_node, token) + await chat(money_node, token)
    async with AdminClient(money_node.url) as client:
        await client.login()
        money = await client.get("/admin/api/money")
        assert money["assets_msat"] == {mint.url: 100_000}
        assert money["liabilities_msat"] == 100_000 - cost
        assert money["earnings_msat"] == cost and money["withdrawable_sat"] == cost // 1000
        assert money["solvent"] is True
        too_much = {"amount": cost // 1000 + 1}
        status, body, _ = await client.call("POST", "/admin/api/earnings/withdraw", too_much)
        assert status == 400 and body["error"]["code"] == "exceeds_earnings"
        paid = await client.send("POST", "/admin/api/earnings/withdraw", {})
        assert paid["amount"] == cost // 1000 and paid["mint"] == mint.url
        assert await ref_wallet.receive(paid["cashu_token"]) == cost // 1000
        after = await client.get("/admin/api/earnings")
        assert after["withdrawable_sat"] == 0 and after["solvent"] is True
        assert after["payouts"][0]["amount_sat"] == cost // 1000
        status, body, _ = await client.call("POST", "/admin/api/earnings/withdraw", {"amount": 1})
        assert status == 400
        report = await client.get("/admin/api/audit")
        assert report["solvent"] and report["ledger_ok"] and not report["spent_behind_our_back"]
    money_node.assert_clean()


async def test_the_payout_hook_itself_caps_earnings(
    money_node: NodeHandle, mint: Any, ref_wallet: Any
) -> None:
    """The route checks first; the hook checks again inside the payout's own transaction."""
    token = await ref_wallet.token(mint.url, 20)
    await chat(money_node, token)
    node = money_node.server.app[PARTS]
    with pytest.raises(Conflict, match="earnings"):
        money_node.server.call(node.wallet.send(6, "earnings:direct"))
    assert money_node.server.app[PARTS].wallet.assets_msat() == {mint.url: 20_000}


async def test_audit_flags_a_proof_spent_behind_the_nodes_back(
    money_node: NodeHandle, mint: Any, ref_wallet: Any
) -> None:
    token = await ref_wallet.token(mint.url, 64)
    async with AdminClient(money_node.url) as client:
        await client.login()
        status, body, _ = await client.call("GET", "/admin/api/audit")
        assert status == 200 and body["proofs_checked"] == 0
        await chat(money_node, token)
        clean = await client.get("/admin/api/audit")
        assert clean["proofs_checked"] > 0 and clean["solvent"] is True
        row = money_node.db.query_one(
            "SELECT * FROM wallet_proofs WHERE state = 'unspent' ORDER BY amount DESC LIMIT 1"
        )
        assert row is not None
        stolen = cashu.Proof(row["amount"], row["keyset_id"], row["secret"], row["c"])
        thief = cashu.serialize_v4(cashu.Token(mint=mint.url, proofs=[stolen], unit="sat"))
        assert await ref_wallet.receive(thief) == row["amount"]  # swapped away at the mint
        report = await client.get("/admin/api/audit")
        assert [p["y"] for p in report["spent_behind_our_back"]] == [row["y"]]
        assert report["spent_behind_our_back"][0]["remote"] == "SPENT"
        assert report["verified_assets_msat"] == 64_000 - row["amount"] * 1000
        assert report["solvent"] is False and report["ledger_ok"] is True


async def test_marking_a_payout_collected_needs_a_finished_earnings_payout(
    money_node: NodeHandle,
) -> None:
    async with AdminClient(money_node.url) as client:
        assert (await client.login())[0] == 200
        path = "/admin/api/earnings/payouts/{}/collected"
        status, body, _ = await client.call("POST", path.format(999))
        assert status == 404 and body["error"]["code"] == "payout_not_found"
        for bad in ("abc", "-1", "²", str(2**63)):
            status, body, _ = await client.call("POST", path.format(bad))
            assert status in (400, 404) and "error" in body, (bad, status)
        status, _, _ = await client.call("POST", path.format(1), csrf=False)
        assert status == 403  # a session alone is not enough: the CSRF token too
