"""An upstream's key goes only where it was given for: moving the upstream needs the key again.

The key is write-only in the admin (never shown), but an admin session could repoint the
upstream's `base_url` at an address of its own and keep the key, which the node then sent
there with the next request or connection test: a stolen session was a stolen key. Now a
change of `base_url` (through PATCH /admin/api/settings or the upstreams API) must carry
`api_key` in the same change; otherwise a 400 names the field and nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from node.parts import PARTS
from tests.conftest import NodeHandle
from tests.support.admin_client import PASSWORD, AdminClient
from tests.support.servers import ThreadedServer

SECRET = "sk-upstream-secret"  # the mock upstream's key in the test configuration


@pytest.fixture
def admin_node(make_node: Callable[..., NodeHandle]) -> NodeHandle:
    return make_node(node={"admin_password": PASSWORD})


def upstream_of(node: NodeHandle, name: str) -> Any:
    return next(u for u in node.server.app[PARTS].settings.upstreams if u.name == name)


def keys_seen(server: ThreadedServer) -> list[str]:
    return [r["headers"].get("Authorization", "") for r in server.mock.received]


async def test_moving_an_upstream_without_its_key_is_refused(
    admin_node: NodeHandle, fresh_upstream: ThreadedServer
) -> None:
    elsewhere = f"{fresh_upstream.url}/v1"
    before = upstream_of(admin_node, "mock").base_url
    async with AdminClient(admin_node.url) as client:
        await client.login()
        status, body, _ = await client.call(
            "PATCH", "/admin/api/upstreams/mock", {"base_url": elsewhere}
        )
        assert status == 400
        assert (body["error"]["param"], body["error"]["code"]) == ("api_key", "api_key_required")
        upstreams = [u.model_dump() for u in admin_node.server.app[PARTS].settings.upstreams]
        upstreams[0] = {k: v for k, v in upstreams[0].items() if k != "api_key"}
        upstreams[0]["base_url"] = elsewhere
        patch = {"node": {"name": "renamed meanwhile"}, "upstreams": upstreams}
        status, body, _ = await client.call("PATCH", "/admin/api/settings", patch)
        assert status == 400 and body["error"]["param"] == "upstreams.0.api_key"
        await client.send("POST", "/admin/api/upstreams/mock/test")  # the key goes where it did
        assert admin_node.server.app[PARTS].settings.node.name == "test node"  # nothing changed
    assert upstream_of(admin_node, "mock").base_url == before
    assert upstream_of(admin_node, "mock").api_key == SECRET
    assert not any(SECRET in seen for seen in keys_seen(fresh_upstream))


@pytest.mark.parametrize("through", ["upstreams api", "settings"])
async def test_moving_an_upstream_with_its_key_again_is_done(
    admin_node: NodeHandle, fresh_upstream: ThreadedServer, through: str
) -> None:
    elsewhere = f"{fresh_upstream.url}/v1"
    async with AdminClient(admin_node.url) as client:
        await client.login()
        if through == "settings":
            upstreams = [u.model_dump() for u in admin_node.server.app[PARTS].settings.upstreams]
            upstreams[0] |= {"base_url": elsewhere, "api_key": "sk-the-new-key"}
            await client.send("PATCH", "/admin/api/settings", {"upstreams": upstreams})
        else:
            change = {"base_url": elsewhere, "api_key": "sk-the-new-key"}
            await client.send("PATCH", "/admin/api/upstreams/mock", change)
    assert upstream_of(admin_node, "mock").base_url == elsewhere
    key = admin_node.new_key(1_000_000)
    chat = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}]}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{admin_node.url}/v1/chat/completions",
            json=chat,
            headers={"Authorization": f"Bearer {key}"},
        ) as resp,
    ):
        assert resp.status == 200
    assert keys_seen(fresh_upstream) == ["Bearer sk-the-new-key"]


async def test_other_changes_and_keyless_upstreams_need_no_key(
    admin_node: NodeHandle, fresh_upstream: ThreadedServer
) -> None:
    same = upstream_of(admin_node, "mock").base_url + "/"  # the same address, spelled otherwise
    async with AdminClient(admin_node.url) as client:
        await client.login()
        change = {"base_url": same, "display_name": "Mock"}
        await client.send("PATCH", "/admin/api/upstreams/mock", change)
        moved = {"base_url": f"{fresh_upstream.url}/v1"}  # `impatient` has no key to leak
        await client.send("PATCH", "/admin/api/upstreams/impatient", moved)
    assert upstream_of(admin_node, "mock").display_name == "Mock"
    assert upstream_of(admin_node, "mock").api_key == SECRET
    assert upstream_of(admin_node, "impatient").base_url == f"{fresh_upstream.url}/v1"
