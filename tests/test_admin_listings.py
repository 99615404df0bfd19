"""An admin save keeps the models the upstreams list: the catalogue it rebuilds keeps their
listings, and the background refresh fills the catalogue in use (not the one replaced)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from node.parts import PARTS
from tests.conftest import NodeHandle
from tests.support.admin_client import PASSWORD, AdminClient
from tests.support.money import call
from tests.support.servers import ThreadedServer


@pytest.fixture
def listing_node(
    make_node: Callable[..., NodeHandle], upstream: ThreadedServer, fresh_upstream: ThreadedServer
) -> NodeHandle:
    fresh_upstream.mock.listed = ["listed-b"]
    lister = {
        "name": "lister",
        "base_url": f"{fresh_upstream.url}/v1",
        "models_refresh_s": 0.2,
        "health_interval_s": 0.2,
        "default_input_usd_per_mtok": 1.0,
        "default_output_usd_per_mtok": 2.0,
    }
    base = f"{upstream.url}/v1"
    mock = {"name": "mock", "base_url": base, "list_models": False}
    impatient = {"name": "impatient", "base_url": base, "list_models": False}
    return make_node(node={"admin_password": PASSWORD}, upstreams=[mock, impatient, lister])


async def offered(node: NodeHandle) -> set[str]:
    async with aiohttp.ClientSession() as s, s.get(node.url + "/v1/models") as r:
        return {m["id"] for m in (await r.json())["data"]}


async def until_offered(node: NodeHandle, model: str) -> None:
    for _ in range(100):
        if model in await offered(node):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{model} never offered: {await offered(node)}")


async def ask(node: NodeHandle, key: str, model: str) -> int:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    status, _, _ = await call(node, "POST", "/v1/chat/completions", key, json=body)
    return status


async def test_a_save_keeps_the_listed_models_and_their_refresh(
    listing_node: NodeHandle, fresh_upstream: ThreadedServer
) -> None:
    node, key = listing_node, listing_node.new_key(1_000_000)
    assert "listed-b" in await offered(node)
    async with AdminClient(node.url) as client:
        await client.login()
        await client.send("PATCH", "/admin/api/settings", {"node": {"name": "renamed"}})
        assert "listed-b" in await offered(node)  # was gone until a restart
        await client.send("PATCH", "/admin/api/models/test-model", {"input_usd_per_mtok": 3})
        assert "listed-b" in await offered(node)
        assert await ask(node, key, "listed-b") == 200
        parts = node.server.app[PARTS]
        assert parts.monitor.catalogue is parts.catalogue
        fresh_upstream.mock.listed = ["listed-b", "listed-c"]
        await until_offered(node, "listed-c")  # the refresh reaches the catalogue in use

        # An upstream's edit starts a new monitor for the new upstreams, on the new catalogue.
        await client.send("PATCH", "/admin/api/upstreams/lister", {"idle_timeout_s": 60})
        assert {"listed-b", "listed-c"} <= await offered(node)
        fresh_upstream.mock.listed = ["listed-d"]
        await until_offered(node, "listed-d")
        assert parts.monitor.catalogue is parts.catalogue
        assert await ask(node, key, "listed-d") == 200
