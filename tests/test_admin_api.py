"""The admin API: sessions, CSRF, the login throttle, settings (secrets, validation, live, kept)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from node.admin.auth import FREE_FAILURES
from node.app import create_app
from node.parts import PARTS
from node.settings import load_settings
from tests.conftest import NodeHandle, node_config
from tests.support.admin_client import PASSWORD, AdminClient
from tests.support.servers import ThreadedServer

SECRET = "sk-upstream-secret"  # the mock upstream's key in tests/conftest.py

GUARDED = [
    ("GET", "/admin/api/session"),
    ("POST", "/admin/api/logout"),
    ("POST", "/admin/api/password"),
    ("GET", "/admin/api/settings"),
    ("PATCH", "/admin/api/settings"),
    ("GET", "/admin/api/upstreams"),
    ("POST", "/admin/api/upstreams"),
    ("PATCH", "/admin/api/upstreams/mock"),
    ("DELETE", "/admin/api/upstreams/mock"),
    ("POST", "/admin/api/upstreams/mock/test"),
    ("GET", "/admin/api/models"),
    ("POST", "/admin/api/models"),
    ("PATCH", "/admin/api/models/test-model"),
    ("DELETE", "/admin/api/models/test-model"),
    ("GET", "/admin/api/accounts"),
    ("GET", "/admin/api/accounts/1/entries"),
    ("GET", "/admin/api/money"),
    ("GET", "/admin/api/audit"),
    ("GET", "/admin/api/earnings"),
    ("POST", "/admin/api/earnings/withdraw"),
    ("GET", "/admin/api/stats"),
]


@pytest.fixture
def admin_node(make_node: Callable[..., NodeHandle]) -> NodeHandle:
    return make_node(node={"admin_password": PASSWORD})


async def test_every_admin_call_needs_a_session(admin_node: NodeHandle) -> None:
    async with AdminClient(admin_node.url) as client:
        for method, path in GUARDED:
            status, body, _ = await client.call(method, path, {})
            assert status == 401, (method, path)
            assert body["error"]["code"] == "admin_login_required"


async def test_login_sets_a_strict_httponly_cookie_and_csrf_guards_writes(
    admin_node: NodeHandle,
) -> None:
    async with AdminClient(admin_node.url) as client:
        status, body, resp = await client.call("POST", "/admin/api/login", {"password": PASSWORD})
        assert status == 200 and len(body["csrf_token"]) >= 32
        cookie = resp.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
        assert "Max-Age=" in cookie and PASSWORD not in cookie
        client.csrf = body["csrf_token"]
        assert (await client.get("/admin/api/session"))["csrf_token"] == client.csrf
        patch = {"node": {"name": "x"}}
        status, body, _ = await client.call("PATCH", "/admin/api/settings", patch, csrf=False)
        assert status == 403 and body["error"]["code"] == "csrf_failed"
        good, client.csrf = client.csrf, "0" * 64
        status, _, _ = await client.call("PATCH", "/admin/api/settings", patch)
        assert status == 403
        client.csrf = good
        await client.send("POST", "/admin/api/logout")
        status, _, _ = await client.call("GET", "/admin/api/settings")
        assert status == 401


async def test_wrong_passwords_are_throttled_per_address(admin_node: NodeHandle) -> None:
    async with AdminClient(admin_node.url) as client:
        for _ in range(FREE_FAILURES):
            status, body = await client.login("wrong")
            assert status == 401 and body["error"]["code"] == "invalid_password"
        status, _ = await client.login("wrong")
        assert status == 401  # this failure starts the lockout
        status, body, resp = await client.call("POST", "/admin/api/login", {"password": PASSWORD})
        assert status == 429 and body["error"]["code"] == "login_throttled"
        assert int(resp.headers["Retry-After"]) >= 1


async def test_generated_password_is_printed_once_and_stored_hashed(
    upstream: ThreadedServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "nutgate.admin")
    settings = load_settings(None, **node_config(upstream.url, tmp_path))
    server = ThreadedServer(lambda: create_app(settings)).start()
    printed = capsys.readouterr().out
    assert f"admin page http://127.0.0.1:{settings.node.port}/admin" in printed
    assert "nutgate admin reset-password --config" in printed  # the way back in, said at once
    password = printed.split("(shown once): ")[1].split()[0]
    async with AdminClient(server.url) as client:
        assert (await client.login(password))[0] == 200
    server.stop()
    assert password.encode() not in Path(settings.database_path).read_bytes()
    server = ThreadedServer(lambda: create_app(settings)).start()  # a restart: not again
    assert "shown once" not in capsys.readouterr().out
    assert "nutgate admin reset-password --config" in caplog.text  # and at every start
    assert password not in caplog.text
    async with AdminClient(server.url) as client:
        assert (await client.login(password))[0] == 200
    server.stop()


async def test_password_change_needs_the_current_one_and_ends_other_sessions(
    admin_node: NodeHandle,
) -> None:
    async with AdminClient(admin_node.url) as me, AdminClient(admin_node.url) as other:
        await me.login()
        await other.login()
        change = {"current_password": "nope", "new_password": "a new long password"}
        status, body, _ = await me.call("POST", "/admin/api/password", change)
        assert status == 400 and body["error"]["param"] == "current_password"
        change["current_password"] = PASSWORD
        await me.send("POST", "/admin/api/password", change)
        assert (await other.call("GET", "/admin/api/settings"))[0] == 401
        await me.get("/admin/api/settings")
    async with AdminClient(admin_node.url) as client:
        assert (await client.login(PASSWORD))[0] == 401
        assert (await client.login("a new long password"))[0] == 200


async def test_settings_in_the_files_structure_without_secrets(admin_node: NodeHandle) -> None:
    async with AdminClient(admin_node.url) as client:
        await client.login()
        status, settings, _ = await client.call("GET", "/admin/api/settings")
        assert status == 200
        assert settings["node"]["name"] == "test node"
        assert {"node", "store", "cashu", "pricing", "upstreams", "models", "limits", "nostr"} <= (
            settings.keys()
        )
        mock = next(u for u in settings["upstreams"] if u["name"] == "mock")
        assert "api_key" not in mock and mock["api_key_set"] is True
        assert "admin_password" not in settings["node"] and "nsec" not in settings["nostr"]
        texts = [json.dumps(settings)]
        for method, path in GUARDED:
            if method == "GET":
                _, body, _ = await client.call(method, path)
                texts.append(json.dumps(body))
        patched = await client.send("PATCH", "/admin/api/settings", {"nostr": {"nsec": ""}})
        texts.append(str(patched))
        for text in texts:
            assert SECRET not in text and PASSWORD not in text


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        ({"pricing": {"markup": -1}}, "pricing.markup"),
        ({"node": {"nmae": "typo"}}, "node.nmae"),
        ({"limits": {"per_minute": "lots"}}, "limits.per_minute"),
        ({"cashu": {"mints": ["ftp://mint"]}}, "cashu.mints"),
        ({"node": {"port": 1}}, "node.port"),
        ({"node": {"admin_password": "sneaky"}}, "node.admin_password"),
        ({"models": [{"id": "m", "upstream": "nowhere"}]}, "models.0.upstream"),
        ({"bogus": {}}, "bogus"),
    ],
)
async def test_a_bad_setting_is_refused_naming_the_field(
    admin_node: NodeHandle, patch: dict[str, Any], param: str
) -> None:
    async with AdminClient(admin_node.url) as client:
        await client.login()
        status, body, _ = await client.call("PATCH", "/admin/api/settings", patch)
        assert status == 400, body
        assert body["error"]["param"] == param
        assert param.split(".")[-1] in body["error"]["message"] or param in body["error"]["message"]
        assert (await client.get("/admin/api/settings"))["node"]["name"] == "test node"


async def test_a_change_applies_live_and_updates_the_announcement(admin_node: NodeHandle) -> None:
    node = admin_node.server.app[PARTS]
    async with AdminClient(admin_node.url) as client:
        await client.login()
        patch = {"node": {"name": "Renamed", "description": "new about"}, "pricing": {"markup": 2}}
        body = await client.send("PATCH", "/admin/api/settings", patch)
        assert body["node"]["name"] == "Renamed" and body["pricing"]["markup"] == 2
        assert body["node"]["description"] == "new about"
    assert node.settings.node.name == "Renamed"
    announced = node.nostr._announcement  # what the next event will carry
    assert announced is not None and announced.name == "Renamed"
    assert node.pricer.markup == 2


async def test_changes_win_over_the_file_at_the_next_start(
    upstream: ThreadedServer, tmp_path: Path
) -> None:
    config = node_config(upstream.url, tmp_path, node={"admin_password": PASSWORD})
    settings = load_settings(None, **config)
    server = ThreadedServer(lambda: create_app(settings)).start()
    async with AdminClient(server.url) as client:
        await client.login()
        patch = {"node": {"name": "Kept"}, "limits": {"per_minute": 7}}
        await client.send("PATCH", "/admin/api/settings", patch)
        await client.send("PATCH", "/admin/api/upstreams/mock", {"first_byte_timeout_s": 33})
    server.stop()
    server = ThreadedServer(lambda: create_app(settings)).start()
    node = server.app[PARTS]
    try:
        assert node.settings.node.name == "Kept" and node.settings.limits.per_minute == 7
        mock = next(u for u in node.settings.upstreams if u.name == "mock")
        assert mock.first_byte_timeout_s == 33 and mock.api_key == SECRET
        # the key survived the edit above
        assert node.settings.node.description == settings.node.description  # untouched: file
    finally:
        server.stop()
