"""The admin's session cookie is `Secure` when the login arrived over https: over TLS to the
node itself, or through a TLS proxy listed in `[node] trusted_proxies`, whose
X-Forwarded-Proto is believed (nobody else's is: any client can send the header).

Behind the TLS proxy the README recommends, the cookie was never Secure: a browser would send
it over plain http to the same host, where anyone on the path could read it.
"""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from node.app import create_app
from node.settings import ConfigError, load_settings
from tests.conftest import NodeHandle, node_config
from tests.support.admin_client import PASSWORD
from tests.support.servers import ThreadedServer

HTTPS = {"X-Forwarded-Proto": "https"}


async def login_cookie(url: str, headers: dict[str, str] | None = None) -> str:
    """The Set-Cookie header a successful login answers with."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{url}/admin/api/login", json={"password": PASSWORD}, headers=headers, ssl=False
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return resp.headers["Set-Cookie"]


def secure(cookie: str) -> bool:
    return "secure" in [part.strip().lower() for part in cookie.split(";")]


@pytest.fixture
def admin_node(make_node: Callable[..., NodeHandle]) -> Callable[..., NodeHandle]:
    def make(proxies: list[str]) -> NodeHandle:
        return make_node(node={"admin_password": PASSWORD, "trusted_proxies": proxies})

    return make


@pytest.mark.parametrize(
    ("proxies", "headers", "expected"),
    [
        pytest.param(["127.0.0.1"], HTTPS, True, id="trusted proxy says https"),
        pytest.param(["127.0.0.0/8"], HTTPS, True, id="trusted network says https"),
        pytest.param(
            ["127.0.0.1"], {"X-Forwarded-Proto": "http, https"}, True, id="the last one counts"
        ),
        pytest.param(["127.0.0.1"], {"X-Forwarded-Proto": "https, http"}, False, id="appended"),
        pytest.param(["127.0.0.1"], None, False, id="trusted proxy, plain http"),
        pytest.param([], HTTPS, False, id="no proxy trusted"),
        pytest.param(["10.0.0.0/8"], HTTPS, False, id="another proxy trusted"),
    ],
)
async def test_the_cookie_is_secure_when_a_trusted_proxy_says_https(
    admin_node: Callable[..., NodeHandle],
    proxies: list[str],
    headers: dict[str, str] | None,
    expected: bool,
) -> None:
    node = admin_node(proxies)
    cookie = await login_cookie(node.url, headers)
    assert cookie.startswith("nutgate_admin=") and "HttpOnly" in cookie
    assert secure(cookie) is expected


@pytest.fixture
def tls_node(upstream: ThreadedServer, tmp_path: Path) -> Iterator[NodeHandle]:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    config: dict[str, Any] = node_config(upstream.url, tmp_path, node={"admin_password": PASSWORD})
    settings = load_settings(None, **config)
    server = ThreadedServer(lambda: create_app(settings), ssl_context=context).start()
    handle = NodeHandle(settings, server)
    yield handle
    server.stop()
    handle.db.close()


async def test_the_cookie_is_secure_over_tls_to_the_node(tls_node: NodeHandle) -> None:
    assert tls_node.url.startswith("https://")
    assert secure(await login_cookie(tls_node.url))


@pytest.mark.parametrize("proxy", ["not an address", "10.0.0.0/33"])
def test_a_trusted_proxy_that_is_no_address_is_refused_at_start(tmp_path: Path, proxy: str) -> None:
    with pytest.raises(ConfigError, match=r"node\.trusted_proxies"):
        load_settings(None, node={"data_dir": str(tmp_path), "trusted_proxies": [proxy]})
