"""Operator credit (`nutgate keys create --balance-msat`) buys requests and is never paid out.

The node holds no ecash behind a grant: paying one out would spend proofs that back other
clients' balances. A withdraw that reaches into credit is a 403 naming what can be withdrawn;
charges use credit first; solvency counts only what must be paid (balance - credit).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import NodeHandle
from tests.support.admin_client import PASSWORD, AdminClient
from tests.support.mints import MintInfo, RefWallet
from tests.support.money import admin_audit, assert_solvent, call
from tests.support.pg import BOTH_BACKENDS

pytestmark = BOTH_BACKENDS

NUTGATE = [sys.executable, "-m", "node.cli"]
HELLO = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


@pytest.fixture
def credit_node(make_node: Callable[..., NodeHandle], mint: MintInfo) -> NodeHandle:
    return make_node(node={"admin_password": PASSWORD}, cashu={"mints": [mint.url]})


def keys_create(node: NodeHandle, tmp_path: Path, balance_msat: int) -> str:
    """`nutgate keys create` on the node's own database, as an operator runs it."""
    settings = node.settings
    config = tmp_path / "operator.toml"
    config.write_text(
        f'[node]\ndata_dir = "{settings.node.data_dir}"\n[store]\nurl = "{settings.store.url}"\n'
    )
    done = subprocess.run(
        [*NUTGATE, "keys", "create", "-c", str(config), "--balance-msat", str(balance_msat)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


async def test_a_granted_key_cannot_be_withdrawn_as_ecash(
    credit_node: NodeHandle, mint: MintInfo, ref_wallet: RefWallet, tmp_path: Path
) -> None:
    backing = await ref_wallet.token(mint.url, 100)  # another client's money, held as proofs
    assert (await call(credit_node, "GET", "/v1/wallet/balance", backing))[0] == 200
    key = keys_create(credit_node, tmp_path, 50_000)
    for path, body in (("/v1/wallet/withdraw", {"amount": 10}), ("/v1/wallet/refund", None)):
        status, _, answer = await call(credit_node, "POST", path, key, json=body)
        assert status == 403, answer
        assert answer["error"]["code"] == "credit_not_withdrawable"
        assert "0 sat can be withdrawn" in answer["error"]["message"]
    assert credit_node.balance(key) == 50_000
    status, _, _ = await call(credit_node, "POST", "/v1/chat/completions", key, json=HELLO)
    assert status == 200  # it buys requests
    report = await admin_audit(credit_node)
    assert_solvent(report)
    assert report["assets_total_msat"] == 100_000 == report["liabilities_msat"]
    credit_node.assert_clean()


async def test_credit_is_spent_first_and_only_the_ecash_part_is_withdrawable(
    credit_node: NodeHandle, mint: MintInfo, ref_wallet: RefWallet, tmp_path: Path
) -> None:
    key = keys_create(credit_node, tmp_path, 5_000)
    topup = await ref_wallet.token(mint.url, 20)
    status, _, body = await call(
        credit_node, "POST", "/v1/wallet/topup", key, json={"cashu_token": topup}
    )
    assert status == 200 and body["balance_msat"] == 25_000
    status, headers, _ = await call(credit_node, "POST", "/v1/chat/completions", key, json=HELLO)
    cost = int(headers["X-Cost-Msat"])
    assert status == 200 and 0 < cost < 5_000
    status, _, balance = await call(credit_node, "GET", "/v1/wallet/balance", key)
    assert balance["credit_msat"] == 5_000 - cost  # the charge used credit first
    assert balance["withdrawable_msat"] == 20_000
    status, _, body = await call(
        credit_node, "POST", "/v1/wallet/withdraw", key, json={"amount": 21}
    )
    assert status == 403 and body["error"]["code"] == "credit_not_withdrawable"
    assert "20 sat can be withdrawn" in body["error"]["message"]
    status, _, body = await call(credit_node, "POST", "/v1/wallet/withdraw", key, json={})
    assert status == 200 and body["amount"] == 20, body
    assert await ref_wallet.receive(body["cashu_token"]) == 20
    assert credit_node.balance(key) == 5_000 - cost
    async with AdminClient(credit_node.url) as admin:
        await admin.login()
        money = await admin.get("/admin/api/money")
        assert money["credit_msat"] == 5_000 - cost
        assert money["liabilities_msat"] == 0 and money["solvent"] is True
        listing = await admin.get("/admin/api/accounts")
        (row,) = listing["accounts"]
        assert row["credit_msat"] == 5_000 - cost == listing["totals"]["credit_msat"]
    assert_solvent(await admin_audit(credit_node))
    credit_node.assert_clean()


async def test_ecash_of_other_clients_never_pays_a_grant_even_all_at_once(
    credit_node: NodeHandle, mint: MintInfo, ref_wallet: RefWallet, tmp_path: Path
) -> None:
    backing = await ref_wallet.token(mint.url, 64)
    assert (await call(credit_node, "GET", "/v1/wallet/balance", backing))[0] == 200
    key = keys_create(credit_node, tmp_path, 64_000)
    answers = await asyncio.gather(
        *(
            call(credit_node, "POST", "/v1/wallet/withdraw", key, json={"amount": 8})
            for _ in range(8)
        )
    )
    assert {status for status, _, _ in answers} == {403}
    assert_solvent(await admin_audit(credit_node))
