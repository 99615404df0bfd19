"""Secrets stay secret: the upstream never sees a client's key or token, the database keeps only
hashes, and no token reaches the node's log — not even one sent in a URL's query string.
The node contacts no one it was not told to: not an untrusted mint, not a URL in a prompt, a
token's memo or a header. Oversized and dribbled requests are cut off in bounded time.

Admin sessions: a login is throttled, a write without (or with a wrong) CSRF token refused, and
every admin call needs a session — shown in tests/test_admin_api.py; a forged or expired
session cookie is refused here."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from node.admin.http import COOKIE
from node.dev.procs import free_port
from tests.safety.conftest import MakeNodeProcess, Secrets, auth, call, moved_token
from tests.support.admin_client import PASSWORD, AdminClient
from tests.support.mints import MintInfo, RefWallet
from tests.support.servers import ThreadedServer
from wallet import parse_token, serialize_v4

HELLO = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}]}


async def test_secrets_never_go_upstream_nor_into_the_database(
    node_process: MakeNodeProcess,
    upstream: ThreadedServer,
    mint: MintInfo,
    ref_wallet: RefWallet,
    secrets: Secrets,
) -> None:
    proc = await node_process().start()
    token, x_cashu = await ref_wallet.token(mint.url, 50), await ref_wallet.token(mint.url, 20)
    status, created = await call(
        proc, "POST", "/v1/wallet/create", json={"cashu_token": await ref_wallet.token(mint.url, 9)}
    )
    assert status == 200
    key = created["api_key"]
    secrets.add(token, x_cashu, key)
    mock = upstream.mock
    seen_before = len(mock.received)
    for headers in ({"Authorization": f"Bearer {token}"}, {"X-Cashu": x_cashu}):
        status, _ = await call(proc, "POST", "/v1/chat/completions", json=HELLO, headers=headers)
        assert status == 200
    status, _ = await call(
        proc, "POST", "/v1/chat/completions", json=HELLO, headers={"Authorization": f"Bearer {key}"}
    )
    assert status == 200
    sent_upstream = json.dumps(mock.received[seen_before:])
    assert secrets.found_in(sent_upstream) == []
    assert "sk-upstream-secret" in sent_upstream  # the node's own upstream key, and only that
    dump = "\n".join(proc.query_dump())
    assert secrets.found_in(dump) == []


async def test_a_token_in_a_query_string_stays_out_of_the_log(
    node_process: MakeNodeProcess, mint: MintInfo, ref_wallet: RefWallet, secrets: Secrets
) -> None:
    proc = await node_process().start()
    token = await ref_wallet.token(mint.url, 7)
    secrets.add(token)
    status, created = await call(
        proc, "GET", "/v1/balance/create", params={"initial_balance_token": token}
    )
    assert status == 200
    secrets.add(created["api_key"])
    async with aiohttp.ClientSession() as session:  # and a bogus one in any other URL
        await session.get(f"{proc.url}/v1/models?key={created['api_key']}")
    proc.stop()
    assert secrets.found_in(proc.log()) == []


class Recorder:
    """An HTTP server that only counts who came: it must see no one."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.hits: list[str] = []
        self.runner: web.AppRunner | None = None

    async def _hit(self, request: web.Request) -> web.Response:
        self.hits.append(request.path_qs)
        return web.json_response({"keysets": []})

    async def start(self) -> Recorder:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._hit)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    rec = await Recorder().start()
    yield rec
    assert rec.runner is not None
    await rec.runner.cleanup()


async def test_a_token_of_an_untrusted_mint_is_refused_without_contacting_it(
    node_process: MakeNodeProcess,
    mint: MintInfo,
    ref_wallet: RefWallet,
    recorder: Recorder,
    secrets: Secrets,
) -> None:
    proc = await node_process().start()
    key = await ref_wallet.token(mint.url, 10)
    token = await moved_token(ref_wallet, mint, recorder.url, 5)  # real proofs, foreign mint
    secrets.add(key, token)
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/chat/completions", {"json": HELLO, "headers": auth(token)}),
        ("POST", "/v1/chat/completions", {"json": HELLO, "headers": {"X-Cashu": token}}),
        ("POST", "/v1/wallet/create", {"json": {"cashu_token": token}}),
        ("POST", "/v1/wallet/topup", {"json": {"cashu_token": token}, "headers": auth(key)}),
        ("POST", "/v1/wallet/withdraw", {"json": {"mint": recorder.url}, "headers": auth(key)}),
    ]
    for method, path, kwargs in attempts:
        status, body = await call(proc, method, path, **kwargs)
        assert status == 400 and body["error"]["code"] == "mint_not_trusted", (path, body)
    assert recorder.hits == []
    assert proc.scalar("SELECT COUNT(*) FROM wallet_swaps") == 0


async def test_no_url_from_a_prompt_a_memo_or_a_header_is_fetched(
    node_process: MakeNodeProcess,
    mint: MintInfo,
    ref_wallet: RefWallet,
    recorder: Recorder,
    secrets: Secrets,
) -> None:
    proc = await node_process().start()
    key = await ref_wallet.token(mint.url, 200)  # an image reserves the context: 128 000 tokens
    secrets.add(key)
    image = {"type": "image_url", "image_url": {"url": f"{recorder.url}/cat.png"}}
    text = {"type": "text", "text": f"summarise {recorder.url}/page"}
    prompt = {**HELLO, "messages": [{"role": "user", "content": [text, image]}]}
    headers = {
        **auth(key),
        "Referer": f"{recorder.url}/ref",
        "X-Forwarded-Host": recorder.url,
        "Link": f"<{recorder.url}/l>",
    }
    status, _ = await call(proc, "POST", "/v1/chat/completions", json=prompt, headers=headers)
    assert status == 200
    memo = replace(parse_token(await ref_wallet.token(mint.url, 3)), memo=f"{recorder.url}/m")
    status, _ = await call(
        proc,
        "POST",
        "/v1/wallet/topup",
        json={"cashu_token": serialize_v4(memo)},
        headers=auth(key),
    )
    assert status == 200
    await asyncio.sleep(0.3)
    assert recorder.hits == []


async def test_an_oversized_body_is_413_in_the_error_envelope(
    node_process: MakeNodeProcess,
) -> None:
    proc = await node_process(limits={"per_minute": 0, "max_body_bytes": 4096}).start()
    big = {**HELLO, "messages": [{"role": "user", "content": "x" * 10_000}]}
    status, body = await call(proc, "POST", "/v1/chat/completions", json=big)
    assert status == 413 and body["error"]["code"] == "request_too_large"
    assert set(body["error"]) == {"message", "type", "param", "code"}


async def _dribble(port: int, head: bytes, rest: bytes, limit_s: float) -> tuple[bytes, float]:
    """Send `head`, then `rest` a byte at a time; what came back, and when the node hung up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(head)
    got = b""

    async def trickle() -> None:
        for i in range(len(rest)):
            writer.write(rest[i : i + 1])
            await asyncio.sleep(0.2)

    feeder = asyncio.create_task(trickle())
    try:
        async with asyncio.timeout(limit_s):
            while chunk := await reader.read(4096):
                got += chunk
    except (ConnectionError, TimeoutError):
        pass
    finally:
        feeder.cancel()
        writer.close()
    return got, time.monotonic() - started


async def test_slow_loris_headers_and_bodies_are_cut_off(node_process: MakeNodeProcess) -> None:
    limits = {"per_minute": 0, "header_timeout_s": 1.0, "body_timeout_s": 1.0}
    proc = await node_process(limits=limits).start()
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
    got, took = await _dribble(proc.port, head, b"X-Slow: " + b"a" * 100, limit_s=10)
    assert took < 5, took  # the node hung up on headers that never end
    body = json.dumps(HELLO).encode()
    head += b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    got, took = await _dribble(proc.port, head, body, limit_s=10)
    assert took < 5, (took, got[:300], proc.log()[-2000:])
    assert got.startswith(b"HTTP/1.1 408") and b'"request_timeout"' in got, got[:300]


async def test_a_forged_or_expired_admin_session_is_refused(node_process: MakeNodeProcess) -> None:
    proc = await node_process(node={"admin_password": PASSWORD}).start()
    async with AdminClient(proc.url) as client:
        client.session.cookie_jar.update_cookies({COOKIE: "forged-" + "a" * 40})
        status, body, _ = await client.call("GET", "/admin/api/settings")
        assert status == 401 and body["error"]["code"] == "admin_login_required"
        assert (await client.login())[0] == 200
        assert (await client.call("GET", "/admin/api/settings"))[0] == 200
        conn = sqlite3.connect(proc.db_path)  # time passes: the session is past its expiry
        with conn:
            conn.execute("UPDATE admin_sessions SET expires_at = ?", (int(time.time()) - 1,))
        conn.close()
        status, body, _ = await client.call("GET", "/admin/api/settings")
        assert status == 401 and body["error"]["code"] == "admin_login_required"
