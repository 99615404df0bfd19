"""The admin's upstreams and models: add, edit, remove, test a connection, price overrides."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from node.dev.procs import free_port
from node.parts import PARTS
from tests.conftest import NodeHandle
from tests.support.admin_client import PASSWORD, AdminClient
from tests.support.servers import ThreadedServer


@pytest.fixture
def admin_node(make_node: Callable[..., NodeHandle]) -> NodeHandle:
    return make_node(node={"admin_password": PASSWORD})


async def public(node: NodeHandle, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.request(method, node.url + path, **kwargs) as r:
        return r.status, await r.json()


async def test_add_an_upstream_test_it_and_sell_one_of_its_models(
    admin_node: NodeHandle, upstream: ThreadedServer
) -> None:
    base = next(u.base_url for u in admin_node.settings.upstreams if u.name == "mock")
    async with AdminClient(admin_node.url) as client:
        await client.login()
        new = {"name": "second", "base_url": base, "api_key": "sk-second-secret"}
        listing = await client.send("POST", "/admin/api/upstreams", new, status=201)
        second = next(u for u in listing["upstreams"] if u["name"] == "second")
        assert second["api_key_set"] is True and "sk-second-secret" not in json.dumps(listing)
        tested = await client.send("POST", "/admin/api/upstreams/second/test")
        assert tested["ok"] is True and tested["models"] == ["mock-model"]
        model = {
            "id": "resold",
            "upstream": "second",
            "upstream_model": "test-model",
            "input_usd_per_mtok": 3.0,
            "output_usd_per_mtok": 4.0,
        }
        listing = await client.send("POST", "/admin/api/models", model, status=201)
        assert "resold" in next(u for u in listing["upstreams"] if u["name"] == "second")["models"]
        status, body = await public(admin_node, "GET", "/v1/models/resold")
        assert status == 200 and body["pricing"]["prompt"] == 0.000003
        key = admin_node.new_key(1_000_000)
        chat = {"model": "resold", "messages": [{"role": "user", "content": "hi"}]}
        status, _ = await public(
            admin_node,
            "POST",
            "/v1/chat/completions",
            json={**chat, "max_tokens": 5},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert status == 200
        seen = upstream.mock.received[-1]["headers"]
        assert seen["Authorization"] == "Bearer sk-second-secret"


async def test_price_override_applies_at_once(admin_node: NodeHandle) -> None:
    async with AdminClient(admin_node.url) as client:
        await client.login()
        await client.send("PATCH", "/admin/api/models/test-model", {"input_usd_per_mtok": 7.5})
        status, body = await public(admin_node, "GET", "/v1/models/test-model")
        assert body["pricing"]["prompt"] == 0.0000075
        status, body, _ = await client.call(
            "PATCH", "/admin/api/models/test-model", {"input_usd_per_mtok": -1}
        )
        assert status == 400 and body["error"]["param"] == "models.0.input_usd_per_mtok"
        await client.send("DELETE", "/admin/api/models/test-model")
        status, _ = await public(admin_node, "GET", "/v1/models/test-model")
        assert status == 404


async def test_editing_an_upstream_keeps_its_key_and_renames_its_models(
    admin_node: NodeHandle,
) -> None:
    async with AdminClient(admin_node.url) as client:
        await client.login()
        await client.send("PATCH", "/admin/api/upstreams/mock", {"name": "renamed"})
        settings = admin_node.server.app[PARTS].settings
        renamed = next(u for u in settings.upstreams if u.name == "renamed")
        assert renamed.api_key == "sk-upstream-secret"
        assert all(m.upstream != "mock" for m in settings.models)


async def test_an_upstream_in_use_is_not_removed(admin_node: NodeHandle) -> None:
    async with AdminClient(admin_node.url) as client:
        await client.login()
        status, body, _ = await client.call("DELETE", "/admin/api/upstreams/impatient")
        assert status == 409 and "test-hang" in body["error"]["message"]
        await client.send("DELETE", "/admin/api/models/test-hang")
        listing = await client.send("DELETE", "/admin/api/upstreams/impatient")
        assert [u["name"] for u in listing["upstreams"]] == ["mock"]
        status, _, _ = await client.call("DELETE", "/admin/api/upstreams/impatient")
        assert status == 404


async def test_a_dead_upstream_fails_its_connection_test(admin_node: NodeHandle) -> None:
    async with AdminClient(admin_node.url) as client:
        await client.login()
        dead = {"name": "dead", "base_url": f"http://127.0.0.1:{free_port()}/v1"}
        await client.send("POST", "/admin/api/upstreams", dead, status=201)
        tested = await client.send("POST", "/admin/api/upstreams/dead/test")
        assert tested["ok"] is False and tested["error"]
        status, body, _ = await client.call("POST", "/admin/api/upstreams", dead)
        assert status == 409
        bad = {"name": "bad", "base_url": "not a url"}
        status, body, _ = await client.call("POST", "/admin/api/upstreams", bad)
        assert status == 400 and body["error"]["param"].endswith("base_url")
