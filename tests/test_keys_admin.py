"""The operator's side of keys: each account's request records and sub-keys in the admin, limits
and expiry set on any key (admin API, `nutgate keys create`), revocation at once."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from node.money.ledger import hash_key
from tests.conftest import NodeHandle
from tests.support.admin_client import PASSWORD, AdminClient
from tests.support.money import call
from tests.support.pg import BOTH_BACKENDS

pytestmark = BOTH_BACKENDS

NUTGATE = [sys.executable, "-m", "node.cli"]
HELLO: dict[str, Any] = {
    "model": "test-model",
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 10,
}


@pytest.fixture
def admin_node(make_node: Callable[..., NodeHandle]) -> NodeHandle:
    return make_node(node={"admin_password": PASSWORD})


async def chat(node: NodeHandle, key: str, **extra: Any) -> tuple[int, Any]:
    status, _, body = await call(node, "POST", "/v1/chat/completions", key, json={**HELLO, **extra})
    return status, body


def account_of(node: NodeHandle, key: str) -> int:
    account_id = node.ledger.account_id(hash_key(key))
    assert account_id is not None
    return account_id


async def test_the_admin_sees_requests_and_sub_keys_sets_limits_and_revokes(
    admin_node: NodeHandle,
) -> None:
    parent = admin_node.new_key(1_000_000)
    status, _, child = await call(
        admin_node, "POST", "/v1/keys", parent, json={"name": "bot", "spend_limit_msat": 10**5}
    )
    assert status == 201
    assert (await chat(admin_node, parent))[0] == 200
    assert (await chat(admin_node, child["api_key"]))[0] == 200
    account = account_of(admin_node, parent)
    async with AdminClient(admin_node.url) as admin:
        assert (await admin.login())[0] == 200
        page = await admin.get(f"/admin/api/accounts/{account}/requests")
        assert len(page["data"]) == 2 and all(r["cost_msat"] > 0 for r in page["data"])
        assert {r["key_id"] for r in page["data"]} == {account, int(child["id"][4:])}
        keys = await admin.get(f"/admin/api/accounts/{account}/keys")
        (sub,) = keys["sub_keys"]
        assert sub["name"] == "bot" and sub["spent_msat"] == page["data"][0]["cost_msat"]
        # the operator caps the parent key itself, then revokes the sub-key
        capped = await admin.send("PATCH", f"/admin/api/keys/{account}", {"spend_limit_msat": 1})
        assert capped["spend_limit_msat"] == 1
        status, body = await chat(admin_node, parent)
        assert status == 402 and body["error"]["code"] == "key_limit_reached"
        status, body = await chat(admin_node, child["api_key"])  # the parent's cap holds it too
        assert status == 402 and body["error"]["code"] == "key_limit_reached"
        assert "parent key's spending limit of 1 msat" in body["error"]["message"]
        past = {"spend_limit_msat": None, "expires_at": int(time.time()) - 1}
        await admin.send("PATCH", f"/admin/api/keys/{account}", past)
        status, body = await chat(admin_node, child["api_key"])  # nor past the parent's expiry
        assert status == 401 and body["error"]["code"] == "key_expired"
        await admin.send("PATCH", f"/admin/api/keys/{account}", {"expires_at": None})
        assert (await chat(admin_node, child["api_key"]))[0] == 200
        await admin.send("POST", f"/admin/api/keys/{child['id']}/revoke")
        status, body = await chat(admin_node, child["api_key"])
        assert status == 401 and body["error"]["code"] == "key_revoked"
        bad, _, _ = await admin.call("PATCH", f"/admin/api/keys/{account}", {"limit_period": 3})
        assert bad == 400
        missing, _, _ = await admin.call("POST", "/admin/api/keys/999999/revoke")
        assert missing == 404
        no_csrf, _, _ = await admin.call("POST", f"/admin/api/keys/{account}/revoke", csrf=False)
        assert no_csrf == 403
    assert (await call(admin_node, "GET", f"/admin/api/accounts/{account}/requests"))[0] == 401
    admin_node.assert_clean()


def keys_create(node: NodeHandle, tmp_path: Path, *flags: str) -> str:
    settings = node.settings
    config = tmp_path / "operator.toml"
    config.write_text(
        f'[node]\ndata_dir = "{settings.node.data_dir}"\n[store]\nurl = "{settings.store.url}"\n'
    )
    done = subprocess.run(
        [*NUTGATE, "keys", "create", "-c", str(config), "--balance-msat", "100000", *flags],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


async def test_nutgate_keys_create_sets_expiry_and_models(node: NodeHandle, tmp_path: Path) -> None:
    allowed = keys_create(node, tmp_path, "--models", "test-model", "--spend-limit-msat", "5000")
    expired = keys_create(node, tmp_path, "--expires-at", str(int(time.time()) - 1))
    assert (await chat(node, allowed))[0] == 200
    status, body = await chat(node, allowed, model="test-slow")
    assert status == 403 and body["error"]["code"] == "model_not_allowed"
    status, _, me = await call(node, "GET", "/v1/me", allowed)
    assert me["models"] == ["test-model"] and me["spend_limit_msat"] == 5000
    status, body = await chat(node, expired)
    assert status == 401 and body["error"]["code"] == "key_expired", body
    status, _, me = await call(node, "GET", "/v1/me", expired)
    assert status == 200 and me["expired"] is True and me["balance_msat"] == 100_000


async def test_a_key_made_while_the_node_serves_is_known_at_once(
    node: NodeHandle, tmp_path: Path
) -> None:
    if node.settings.store.url:
        pytest.skip("seen on SQLite")
    first = keys_create(node, tmp_path)
    assert (await chat(node, first))[0] == 200
    second = keys_create(node, tmp_path)
    assert (await chat(node, second))[0] == 200
