"""A browser wallet in real Chromium: a page of another origin pays with X-Cashu through
`fetch` and reads the change from the response header (CORS, `[http] cors_origins`); the
admin is never shared with another origin."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from tests.conftest import NodeHandle
from tests.interop.flows import HELLO, change_due, http
from tests.support.browser import chromium, new_page  # noqa: F401 (chromium: a fixture)
from tests.support.cashu_ts import CashuTs
from tests.support.mints import MintInfo
from tests.support.servers import ThreadedServer

PAGE = "<!doctype html><title>wallet</title><p>a wallet page</p>"

PAY = """async ([url, token, body]) => {
  const resp = await fetch(url + '/v1/chat/completions', {
    method: 'POST',
    headers: {'Content-Type': 'application/json', 'X-Cashu': token},
    body: JSON.stringify(body),
  });
  const answer = await resp.json();
  return {
    status: resp.status,
    change: resp.headers.get('X-Cashu'),
    cost: resp.headers.get('X-Cost-Msat'),
    requestId: resp.headers.get('x-request-id'),
    usageCost: answer.usage && answer.usage.cost_msat,
  };
}"""

ADMIN = """async (url) => {
  try {
    await fetch(url + '/admin/api/login', {
      method: 'POST', headers: {'Content-Type': 'application/json'}, body: '{}'});
    return 'read';
  } catch (e) { return 'blocked'; }
}"""


@pytest.fixture
def wallet_site() -> Any:
    """A page served from another origin than the node's (another port)."""

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    def make() -> web.Application:
        app = web.Application()
        app.router.add_get("/", page)
        return app

    server = ThreadedServer(make).start()
    yield server
    server.stop()


async def test_a_page_of_another_origin_pays_and_reads_the_change(
    chromium: Any,  # noqa: F811
    wallet_site: ThreadedServer,
    wallet_node: NodeHandle,
    cashu_ts: CashuTs,
    mint: MintInfo,
) -> None:
    page = await new_page(chromium)
    await page.goto(wallet_site.url + "/")
    token = await cashu_ts.token(mint.url, 20)
    got = await page.evaluate(PAY, [wallet_node.url, token, HELLO])
    assert got["status"] == 200, got
    cost = int(got["cost"])
    assert cost == got["usageCost"] and got["requestId"]
    assert await cashu_ts.receive(mint.url, got["change"]) == change_due(20, cost)
    assert await page.evaluate(ADMIN, wallet_node.url) == "blocked"  # no CORS for /admin
    wallet_node.assert_clean()


async def test_preflight_is_answered_and_admin_is_not_shared(wallet_node: NodeHandle) -> None:
    asked = {
        "Origin": "https://wallet.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-cashu",
    }
    api = await http(wallet_node, "OPTIONS", "/v1/chat/completions", headers=asked)
    assert api.status == 204
    assert api.headers["Access-Control-Allow-Origin"] == "*"
    assert "x-cashu" in api.headers["Access-Control-Allow-Headers"].lower()
    admin = await http(wallet_node, "OPTIONS", "/admin/api/login", headers=asked)
    assert "Access-Control-Allow-Origin" not in admin.headers
    # a wallet page changes its sub-keys' rules with PATCH /v1/keys/{id}
    keys = await http(wallet_node, "OPTIONS", "/v1/keys/key_1", headers={**asked, **PATCH})
    assert keys.status == 204
    assert "PATCH" in keys.headers["Access-Control-Allow-Methods"].split(", ")


PATCH = {"Access-Control-Request-Method": "PATCH"}


async def test_only_the_listed_origins(make_node: Any, mint: MintInfo) -> None:
    node = make_node(cashu={"mints": [mint.url]}, http={"cors_origins": ["https://a.example"]})
    for origin, allowed in (("https://a.example", True), ("https://b.example", False)):
        answer = await http(node, "GET", "/v1/models", headers={"Origin": origin})
        assert answer.status == 200
        assert answer.headers.get("Access-Control-Allow-Origin") == (origin if allowed else None)
    exposed = await http(node, "GET", "/v1/models", headers={"Origin": "https://a.example"})
    assert "X-Cashu" in exposed.headers["Access-Control-Expose-Headers"]
