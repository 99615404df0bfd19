"""The HTTP edges under odd input: each case was a 500 (a half-applied change, a stall) before.

Bad input gets a 4xx in OpenAI's error envelope and changes nothing. The requests that no
well-behaved client library can send (bytes that are not UTF-8 in a header, a body that does
not match its Content-Encoding) go over a raw socket.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import NodeHandle
from tests.support.admin_client import PASSWORD, AdminClient
from tests.support.logcheck import fields_of

CHAT = b'{"model":"test-model","messages":[{"role":"user","content":"hi"}]}'


async def raw_request(node: NodeHandle, head: list[bytes], body: bytes = b"") -> tuple[int, Any]:
    """Send `head` (request line and headers) and `body` as they are; the status and JSON."""
    lines = [*head, b"Host: 127.0.0.1", b"Connection: close"]
    if body:
        lines.append(b"Content-Length: %d" % len(body))
    reader, writer = await asyncio.open_connection("127.0.0.1", node.server.port)
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(payload)


def assert_envelope(body: Any, status: int, param: str | None = None) -> None:
    assert 400 <= status < 500, (status, body)
    assert set(body["error"]) == {"message", "type", "param", "code"}
    if param is not None:
        assert body["error"]["param"] == param


@pytest.mark.parametrize(
    "query", ["input_tokens=99999999999999999999", "output_tokens=10000000000000000000"]
)
async def test_estimate_with_a_token_count_past_any_model_is_a_400(
    node: NodeHandle, query: str
) -> None:
    url = f"{node.url}/v1/estimate?model=test-model&{query}"
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert_envelope(await resp.json(), resp.status, query.split("=")[0])
        assert resp.status == 400


@pytest.mark.parametrize(
    ("header", "path"),
    [
        (b"Authorization: Bearer sk-\xff\xfeabc", b"POST /v1/chat/completions"),
        (b"X-Cashu: cashuA\xff\xfe", b"POST /v1/chat/completions"),
        (b"Authorization: Bearer sk-\xff\xfeabc", b"GET /v1/models"),  # the rate limiter reads it
    ],
    ids=["bearer", "x-cashu", "bearer on a free route"],
)
async def test_a_credential_header_that_is_not_utf8_is_a_400(
    node: NodeHandle, header: bytes, path: bytes
) -> None:
    key = node.new_key(50_000)
    body = CHAT if path.startswith(b"POST") else b""
    head = [path + b" HTTP/1.1", header, b"Content-Type: application/json"]
    status, answer = await raw_request(node, head, body)
    assert_envelope(answer, status)
    assert status == 400
    assert node.balance(key) == 50_000
    node.assert_clean()


async def test_a_body_that_does_not_decode_as_its_content_encoding_says_is_a_400(
    node: NodeHandle,
) -> None:
    key = node.new_key(50_000)
    head = [
        b"POST /v1/chat/completions HTTP/1.1",
        b"Authorization: Bearer " + key.encode(),
        b"Content-Type: application/json",
        b"Content-Encoding: gzip",
    ]
    status, answer = await raw_request(node, head, CHAT)  # plain JSON, said to be gzip
    assert_envelope(answer, status)
    assert status == 400
    assert node.balance(key) == 50_000


@pytest.mark.parametrize(
    "content_type",
    [b"multipart/form-data", b"multipart/form-data; boundary=zz"],
    ids=["no boundary", "boundary not in the body"],
)
async def test_a_malformed_multipart_transcription_is_a_400(
    node: NodeHandle, content_type: bytes
) -> None:
    key = node.new_key(50_000)
    head = [
        b"POST /v1/audio/transcriptions HTTP/1.1",
        b"Authorization: Bearer " + key.encode(),
        b"Content-Type: " + content_type,
    ]
    status, answer = await raw_request(node, head, b"not a multipart body")
    assert_envelope(answer, status)
    assert status == 400
    assert node.balance(key) == 50_000


@pytest.fixture
def admin_node(make_node: Callable[..., NodeHandle]) -> NodeHandle:
    return make_node(node={"admin_password": PASSWORD})


async def test_admin_cookie_or_csrf_token_that_is_not_utf8_is_refused_with_a_4xx(
    admin_node: NodeHandle,
) -> None:
    head = [b"GET /admin/api/settings HTTP/1.1", b"Cookie: nutgate_admin=\xff\xfeabc"]
    status, answer = await raw_request(admin_node, head)
    assert_envelope(answer, status)
    assert status == 401
    async with AdminClient(admin_node.url) as client:
        await client.login()
        session = next(c.value for c in client.session.cookie_jar if c.key == "nutgate_admin")
    head = [
        b"PATCH /admin/api/settings HTTP/1.1",
        b"Cookie: nutgate_admin=" + session.encode(),
        b"X-CSRF-Token: \xff\xfe",
        b"Content-Type: application/json",
    ]
    status, answer = await raw_request(admin_node, head, b'{"node": {"name": "Changed"}}')
    assert_envelope(answer, status)
    async with AdminClient(admin_node.url) as client:
        await client.login()
        assert (await client.get("/admin/api/settings"))["node"]["name"] == "test node"


@pytest.mark.parametrize(
    ("path", "patch", "param"),
    [
        ("/admin/api/settings", {"pricing": {"markup": "inf"}}, "pricing.markup"),
        ("/admin/api/settings", {"pricing": {"btc_usd": "Infinity"}}, "pricing.btc_usd"),
        ("/admin/api/models/test-model", {"input_usd_per_mtok": "inf"}, "models.0."),
    ],
    ids=["markup", "btc_usd", "model price"],
)
async def test_an_infinite_setting_is_a_400_naming_it_and_changes_nothing(
    admin_node: NodeHandle, path: str, patch: dict[str, Any], param: str
) -> None:
    async with AdminClient(admin_node.url) as client:
        await client.login()
        before = await client.get("/admin/api/settings")
        status, body, _ = await client.call("PATCH", path, patch)
        assert_envelope(body, status)
        assert status == 400 and body["error"]["param"].startswith(param)
        assert await client.get("/admin/api/settings") == before
        # the node still prices and takes later changes
        await client.send("PATCH", "/admin/api/settings", {"node": {"name": "Later"}})
    url = f"{admin_node.url}/v1/estimate?model=test-model&input_tokens=1000"
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200 and (await resp.json())["cost_msat"] == 1000


@pytest.mark.parametrize("account_id", ["99999999999999999999", "²"], ids=["huge", "superscript"])
async def test_account_entries_with_an_id_no_account_can_have_is_a_400(
    admin_node: NodeHandle, account_id: str
) -> None:
    async with AdminClient(admin_node.url) as client:
        await client.login()
        status, body, _ = await client.call("GET", f"/admin/api/accounts/{account_id}/entries")
        assert_envelope(body, status, "id")
        assert status == 400


async def requests_counted(node: NodeHandle, status: int) -> float:
    """nutgate_requests_total for chat completions (no model known yet) with `status`."""
    async with aiohttp.ClientSession() as http, http.get(f"{node.url}/metrics") as resp:
        text = await resp.text()
    want = {"route": "/v1/chat/completions", "model": "", "status": str(status)}
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "nutgate_requests_total" and s.labels == want
    )


BIG_HEAD = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
)


@pytest.mark.parametrize("hang_up", ["close", "reset"])
async def test_a_client_gone_mid_body_is_a_499_logged_without_a_traceback(
    node: NodeHandle, caplog: pytest.LogCaptureFixture, hang_up: str
) -> None:
    caplog.set_level(logging.DEBUG)
    before = {status: await requests_counted(node, status) for status in (499, 500)}
    _, writer = await asyncio.open_connection("127.0.0.1", node.server.port)
    writer.write(BIG_HEAD + b'{"model": "test-')
    await writer.drain()
    await asyncio.sleep(0.3)  # the handler is waiting for the rest of the body
    if hang_up == "reset":  # an RST, not a FIN
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
    deadline = time.monotonic() + 5
    while not (access := [r for r in caplog.records if r.getMessage().startswith("POST")]):
        assert time.monotonic() < deadline, "no access line"
        await asyncio.sleep(0.05)
    fields = fields_of(access[0])
    assert (fields["status"], fields["error"]) == (499, "client_closed")
    assert access[0].levelno == logging.INFO
    failed = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert failed == []
    assert await requests_counted(node, 499) == before[499] + 1
    assert await requests_counted(node, 500) == before[500]


async def test_a_content_length_past_the_limit_is_a_413_at_once_and_the_connection_closed(
    make_node: Callable[..., NodeHandle],
) -> None:
    node = make_node(limits={"max_body_bytes": 1024, "body_timeout_s": 5.0})
    reader, writer = await asyncio.open_connection("127.0.0.1", node.server.port)
    sent = b'{"model": "test-'
    started = time.monotonic()
    writer.write(BIG_HEAD + sent)  # keep-alive: only the node may hang up
    await writer.drain()
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        took = time.monotonic() - started
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        payload = json.loads(await reader.readexactly(length))
        status = int(head.split()[1])
        assert_envelope(payload, status)
        assert (status, payload["error"]["code"]) == (413, "request_too_large"), head
        assert took < 2, took  # not after the 5 s body timeout
        assert b"connection: close" in head.lower()
        # the node may read what is left of the body (its linger), but then it hangs up
        writer.write(b" " * (100_000 - len(sent)))
        assert await asyncio.wait_for(reader.read(), 5) == b""
    finally:
        writer.close()


@pytest.mark.parametrize("depth", [300, 1000])
async def test_a_body_nested_deeper_than_can_be_forwarded_is_a_400(
    node: NodeHandle, depth: int
) -> None:
    """JSON the parser reads (to 1024 levels) but the node could not write upstream again (past
    255): it was a 500 with a traceback, after the payment was taken."""
    key = node.new_key(50_000)
    content = b"[" * depth + b"]" * depth
    body = b'{"model":"test-model","messages":[{"role":"user","content":' + content + b"}]}"
    head = [b"POST /v1/chat/completions HTTP/1.1", b"Authorization: Bearer " + key.encode(),
            b"Content-Type: application/json"]  # fmt: skip
    status, answer = await raw_request(node, head, body)
    assert_envelope(answer, status)
    assert status == 400
    assert node.balance(key) == 50_000
    node.assert_clean()
