"""Keys, sub-keys, the admin and the HTTP edge under attack from outside:

- numbers too long for Python to read, and NUL characters (PostgreSQL's text refuses them),
  are 400s, never 500s;
- a key revoked while its request falls back to another model is refused before that model;
- a key's requests per minute bound its sub-keys too;
- a bad body on the keys routes never redeems the token presented as key, and a caller
  without a key (or locked out of the admin login) is refused before its body is read;
- the admin's settings never show the database password; failed logins stay locked out
  however many addresses a guesser uses; operator credit stays within what the node's sums
  of balances can hold."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from node.admin.auth import FREE_FAILURES, Throttle
from node.errors import RateLimited
from node.money.ledger import hash_key
from tests.conftest import NodeHandle
from tests.support.admin_client import PASSWORD, AdminClient
from tests.support.mints import MintInfo, RefWallet
from tests.support.money import call

HELLO: dict[str, Any] = {
    "model": "test-model",
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 10,
}
# more digits than int() reads from a string (Python's limit of 4300): a ValueError, not a number
LONG_NUMBER = "9" * 5000


@pytest.fixture
def admin_node(make_node: Callable[..., NodeHandle]) -> NodeHandle:
    return make_node(node={"admin_password": PASSWORD})


def assert_envelope(status: int, body: Any, param: str) -> None:
    assert status == 400, (status, body)
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["param"] == param, body


async def test_a_number_too_long_to_read_is_a_400_naming_it(admin_node: NodeHandle) -> None:
    key = admin_node.new_key(1_000_000)
    status, _, body = await call(admin_node, "GET", f"/v1/requests?limit={LONG_NUMBER}", key)
    assert_envelope(status, body, "limit")
    # before any token is looked at: an unknown field, a rule, a query parameter
    for sent in ({"junk": LONG_NUMBER}, {"balance_limit": LONG_NUMBER}):
        body_sent = {"cashu_token": "cashuBnot-a-token", **sent}
        status, _, body = await call(admin_node, "POST", "/v1/wallet/create", json=body_sent)
        assert 400 <= status < 500 and "error" in body, (sent, status, body)
    path = f"/v1/balance/create?initial_balance_token=cashuBx&validity_date={LONG_NUMBER}"
    status, _, body = await call(admin_node, "GET", path)
    assert_envelope(status, body, "expires_at")
    async with AdminClient(admin_node.url) as admin:
        assert (await admin.login())[0] == 200
        for method, path, param in [
            ("GET", f"/admin/api/accounts/{LONG_NUMBER}/entries", "id"),
            ("GET", f"/admin/api/accounts/{LONG_NUMBER}/keys", "id"),
            ("PATCH", f"/admin/api/keys/key_{LONG_NUMBER}", "id"),
            ("POST", f"/admin/api/keys/{LONG_NUMBER}/revoke", "id"),
            ("POST", f"/admin/api/earnings/payouts/{LONG_NUMBER}/collected", "id"),
            ("GET", f"/admin/api/requests?account_id={LONG_NUMBER}", "account_id"),
        ]:
            status, body, _ = await admin.call(method, path, {})
            assert_envelope(status, body, param)
    rules = admin_node.db.query_one("SELECT COUNT(*) FROM key_rules")
    assert rules is not None and rules[0] == 0  # nothing was changed on the way


async def test_a_key_revoked_while_its_request_falls_back_is_refused_before_the_next_model(
    admin_node: NodeHandle,
) -> None:
    """test-hang times out after 1 s, then the request would move on to test-model: the
    revocation that came meanwhile must stop it there, and nothing more is spent."""
    parent = admin_node.new_key(10_000_000)
    status, _, child = await call(admin_node, "POST", "/v1/keys", parent, json={})
    assert status == 201
    body = {**HELLO, "model": "test-hang", "models": ["test-model"]}
    asked = asyncio.create_task(
        call(admin_node, "POST", "/v1/chat/completions", child["api_key"], json=body)
    )
    await asyncio.sleep(0.4)  # the first model is being waited for
    status, _, _ = await call(admin_node, "DELETE", f"/v1/keys/{child['id']}", parent)
    assert status == 200 and not asked.done()
    status, _, answer = await asked
    assert status == 401 and answer["error"]["code"] == "key_revoked", answer
    models = admin_node.db.query("SELECT model FROM request_records")
    assert "test-model" not in [row["model"] for row in models]
    admin_node.assert_clean()


@pytest.mark.parametrize("store_backend", ["postgres"], indirect=True)
async def test_the_settings_never_show_the_database_password(
    make_node: Callable[..., NodeHandle], pg_databases: Any
) -> None:
    """PostgreSQL takes the password in the URL (or its query); trust authentication ignores
    it, so the test server accepts it as given."""
    parts = urlsplit(pg_databases.new())
    assert parts.password is None and parts.username, parts.netloc
    netloc = f"{parts.username}:hunter2@{parts.hostname}:{parts.port}"
    url = urlunsplit(parts._replace(netloc=netloc))
    node = make_node(node={"admin_password": PASSWORD}, store={"url": url + "?password=swordfish"})
    async with AdminClient(node.url) as admin:
        assert (await admin.login())[0] == 200
        status, shown, resp = await admin.call("GET", "/admin/api/settings")
        assert status == 200
        text = await resp.text()
        assert "hunter2" not in text and "swordfish" not in text, shown["store"]
        assert f"@{parts.hostname}:{parts.port}/" in shown["store"]["url"]  # still says where
        # what the page sends back unchanged is no change of a setting read at start
        await admin.send("PATCH", "/admin/api/settings", {"store": shown["store"]})
        status, body, _ = await admin.call(
            "PATCH", "/admin/api/settings", {"store": {"url": "postgresql://x@y/z"}}
        )
        assert status == 400 and body["error"]["param"] == "store.url"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/keys"),
        ("PATCH", "/v1/keys/key_1"),
        ("POST", "/v1/balance/child-key"),
        ("POST", "/v1/balance/child-key/reset"),
    ],
)
@pytest.mark.parametrize("key", [None, "sk-nobodys"], ids=["no-key", "unknown-key"])
async def test_a_caller_without_a_key_is_refused_before_its_body_is_read(
    node: NodeHandle, method: str, path: str, key: str | None
) -> None:
    """The node neither waits for nor holds the body of a caller who cannot make keys."""
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
        "Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", node.server.port)
    writer.write(head.encode() + b'{"name": "')  # and no more of it
    await writer.drain()
    try:
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        writer.close()
    assert answer.split()[1] == b"401", answer


async def test_operator_credit_stays_within_what_the_money_pages_can_sum(
    admin_node: NodeHandle,
) -> None:
    """Each grant was bounded (2^62 msat) but not their total: three broke every sum of
    balances (the money pages, the audit, /metrics) for good, with 500s."""
    async with AdminClient(admin_node.url) as admin:
        assert (await admin.login())[0] == 200
        made = await admin.send("POST", "/admin/api/keys", {"credit_msat": 2**61}, status=201)
        for path, body in [
            ("/admin/api/keys", {"credit_msat": 2**61}),
            ("/admin/api/keys", {"credit_msat": 1}),
            (f"/admin/api/keys/{made['account_id']}/credit", {"amount_msat": 1}),
        ]:
            status, answer, _ = await admin.call("POST", path, body)
            param = next(iter(body))
            assert status == 400 and answer["error"]["param"] == param, (path, answer)
        await admin.send("POST", "/admin/api/keys", {"credit_msat": 0}, status=201)
        for path in ("/admin/api/money", "/admin/api/accounts", "/admin/api/audit"):
            await admin.get(path)
        async with admin.session.get(f"{admin_node.url}/metrics") as metrics:
            assert metrics.status == 200
    admin_node.assert_clean()


async def test_a_keys_requests_per_minute_bound_its_sub_keys_too(admin_node: NodeHandle) -> None:
    """As its spending limit, expiry, revocation and models do: else a key held to a few
    requests a minute makes a sub-key without that rule and goes on through it."""
    async with AdminClient(admin_node.url) as admin:
        assert (await admin.login())[0] == 200
        made = await admin.send(
            "POST", "/admin/api/keys", {"credit_msat": 10**7, "per_minute": 2}, status=201
        )
    parent = made["key"]
    status, _, child = await call(admin_node, "POST", "/v1/keys", parent, json={})
    assert status == 201
    asked = [
        await call(admin_node, "POST", "/v1/chat/completions", key, json=HELLO)
        for key in (parent, child["api_key"], child["api_key"])
    ]
    assert [status for status, _, _ in asked] == [200, 200, 429], asked
    assert "its parent key's limit of 2 requests per minute" in asked[-1][2]["error"]["message"]
    admin_node.assert_clean()


async def test_a_bad_body_on_the_keys_routes_never_redeems_the_token_used_as_key(
    make_node: Callable[..., NodeHandle], mint: MintInfo, ref_wallet: RefWallet
) -> None:
    node = make_node(cashu={"mints": [mint.url]})
    token = await ref_wallet.token(mint.url, 5)
    for method, path, body, param in [
        ("POST", "/v1/keys", {"spend_limit_msat": -1}, "spend_limit_msat"),
        ("PATCH", "/v1/keys/key_1", {"limit_period": "yearly"}, "limit_period"),
        ("POST", "/v1/balance/child-key", {"count": 0}, "count"),
        ("POST", "/v1/balance/child-key", {"count": 1, "balance_limit": -1}, "balance_limit"),
        ("POST", "/v1/balance/child-key/reset", {"child_key": 5}, "child_key"),
    ]:
        status, _, answer = await call(node, method, path, token, json=body)
        assert_envelope(status, answer, param)
    assert await ref_wallet.receive(token) == 5  # still unspent: nothing was redeemed
    node.assert_clean()


@pytest.mark.parametrize("store_backend", ["sqlite", "postgres"], indirect=True)
async def test_a_nul_character_in_a_url_or_a_keys_name_is_a_400(admin_node: NodeHandle) -> None:
    parent = admin_node.new_key(1_000_000)
    for method, path, body, param in [
        ("POST", "/v1/keys", {"name": "a\u0000b"}, "name"),
        ("POST", "/v1/keys", {"models": ["test-model\u0000"]}, "models"),
        ("GET", "/v1/requests/ab%00c", None, None),
        ("GET", "/v1/requests?before=ab%00c", None, None),
        ("GET", "/v1/usage?group_by=%00", None, None),
    ]:
        status, _, answer = await call(admin_node, method, path, parent, json=body)
        assert status == 400 and set(answer["error"]) == {"message", "type", "param", "code"}
        assert answer["error"]["param"] == param, (path, answer)
    async with AdminClient(admin_node.url) as admin:
        assert (await admin.login())[0] == 200
        for method, path, body in [
            ("POST", "/admin/api/keys", {"name": "k\u0000"}),
            ("GET", "/admin/api/requests?model=a%00b", None),
            ("GET", "/admin/api/requests?before=a%00b", None),
        ]:
            status, answer, _ = await admin.call(method, path, body)
            assert status == 400 and "error" in answer, (path, answer)
    rules = admin_node.db.query_one("SELECT COUNT(*) FROM key_rules")
    assert rules is not None and rules[0] == 0


async def test_a_client_locked_out_of_the_admin_is_refused_before_its_body_is_read(
    admin_node: NodeHandle,
) -> None:
    async with AdminClient(admin_node.url) as admin:
        for _ in range(FREE_FAILURES + 1):
            assert (await admin.login("wrong"))[0] == 401
    head = (
        "POST /admin/api/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", admin_node.server.port)
    writer.write(head.encode() + b'{"password": "')  # and no more of it
    await writer.drain()
    try:
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        writer.close()
    assert answer.split()[1] == b"429", answer


def locked(throttle: Throttle, ip: str) -> bool:
    try:
        throttle.check(ip)
    except RateLimited:
        return True
    return False


def test_failed_logins_count_against_an_ipv6_clients_whole_slash_64() -> None:
    """A client holds a /64 of addresses: one each would give it FREE_FAILURES guesses each."""
    throttle = Throttle(clock=lambda: 1000.0)
    for i in range(FREE_FAILURES + 1):
        throttle.failed(f"2001:db8:0:1::{i + 1:x}")
    assert locked(throttle, "2001:db8:0:1::ffff")
    assert locked(throttle, "2001:db8:0:1:abcd::1")
    assert not locked(throttle, "2001:db8:0:2::1")  # another client's /64
    throttle.failed("::ffff:192.0.2.7")  # an IPv4 peer on a dual-stack socket is that peer
    for _ in range(FREE_FAILURES):
        throttle.failed("192.0.2.7")
    assert locked(throttle, "192.0.2.7")


def test_a_flood_of_failing_addresses_does_not_lift_a_lockout() -> None:
    """Memory stays bounded, yet by dropping those who are not locked out, not everyone."""
    throttle = Throttle(clock=lambda: 1000.0)
    for _ in range(FREE_FAILURES + 1):
        throttle.failed("198.51.100.1")
    assert locked(throttle, "198.51.100.1")
    for i in range(10_050):  # one failure each: none of them locked out
        throttle.failed(f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}")
    assert locked(throttle, "198.51.100.1")


@pytest.mark.parametrize("store_backend", ["sqlite", "postgres"], indirect=True)
async def test_a_nul_character_in_a_stored_objects_id_is_a_400(node: NodeHandle) -> None:
    """A previous_response_id (or an input item's id) holding a NUL names nothing this node
    kept (PostgreSQL's text refuses the character): the usual 400, not a failed query's 500."""
    key = node.new_key(1_000_000)
    for body, param in [
        ({"model": "test-model", "input": "hi", "previous_response_id": "resp_a\u0000b"},
         "previous_response_id"),
        ({"model": "test-model", "input": [{"type": "item_reference", "id": "msg_\u0000"}]},
         "input"),
    ]:  # fmt: skip
        status, _, answer = await call(node, "POST", "/v1/responses", key, json=body)
        assert status == 400, answer
        assert answer["error"]["param"].startswith(param), answer
    account = node.ledger.find(hash_key(key))
    assert account is not None and account.balance_msat == 1_000_000
    node.assert_clean()


async def test_a_revoked_key_makes_and_changes_no_sub_keys(admin_node: NodeHandle) -> None:
    """A revoked key spends nothing; it no longer makes, lists or changes sub-keys either
    (their spending was already refused through it, but they were still made)."""
    async with AdminClient(admin_node.url) as admin:
        assert (await admin.login())[0] == 200
        status, made, _ = await admin.call("POST", "/admin/api/keys", {"credit_msat": 10_000})
        assert status == 201, made
        key = made["key"]
        status, _, child = await call(admin_node, "POST", "/v1/keys", key, json={"name": "c"})
        assert status == 201, child
        status, _, _ = await admin.call("POST", f"/admin/api/keys/{made['id']}/revoke")
        assert status == 200
    for method, path, body in [
        ("POST", "/v1/keys", {"name": "d"}),
        ("GET", "/v1/keys", None),
        ("PATCH", f"/v1/keys/{child['id']}", {"name": "e"}),
    ]:
        status, _, answer = await call(admin_node, method, path, key, json=body)
        assert status == 401 and answer["error"]["code"] == "key_revoked", (path, answer)
