"""Requests aiohttp's parser refuses, over raw sockets: the node's envelope, a quiet log.

Such a request never reaches the node's middlewares. aiohttp answered it in text quoting the
bytes it choked on and logged an ERROR with a traceback for each: a log flood for free. Now the
client gets OpenAI's error envelope (400, or 431 for a line or header over `[limits]
max_header_bytes`, 64 KB, or too many headers) with none of
its bytes and `Connection: close`; the log gets one WARNING line without traceback, at most one
a second, which counts the ones left out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time

import pytest

from tests.conftest import NodeHandle

MARK = b"EVILMARK"  # in the offending part of each request: it must not come back

MALFORMED = [
    pytest.param(MARK + b" / HTTP/1.1\r\nHost: x\r\n\r\n", 400, id="bad request line"),
    pytest.param(b"GET /" + MARK * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431, id="long uri"),
    pytest.param(
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: " + MARK * 9000 + b"\r\n\r\n",
        431,
        id="long header",
    ),
    pytest.param(
        b"GET /health HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-%d: %s\r\n" % (i, MARK) for i in range(200))
        + b"\r\n",
        431,
        id="too many headers",
    ),
    pytest.param(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
        b"Content-Length: 8\r\n\r\n" + MARK,
        400,
        id="two content-lengths",
    ),
    pytest.param(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + MARK,
        400,
        id="te with content-length",
    ),
    pytest.param(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + MARK
        + b"\r\nabc\r\n0\r\n\r\n",
        400,
        id="bad chunk size",
    ),
    pytest.param(
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: " + MARK + b"\x00\r\n\r\n",
        400,
        id="nul in header",
    ),
]


async def send_raw(node: NodeHandle, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `raw` as it is; the status, headers and body of the answer, read until the node
    closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", node.server.port)
    writer.write(raw)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)  # EOF: the node closed the connection
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.parametrize(("raw", "status"), MALFORMED)
async def test_a_request_the_parser_refuses_gets_the_envelope_without_its_bytes(
    node: NodeHandle, caplog: pytest.LogCaptureFixture, raw: bytes, status: int
) -> None:
    caplog.set_level(logging.DEBUG)
    got, headers, body = await send_raw(node, raw)
    assert got == status
    assert headers["content-type"].startswith("application/json")
    assert headers["connection"] == "close"
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert MARK not in body and MARK.lower() not in body.lower()
    noted = [r for r in caplog.records if r.name.startswith(("aiohttp", "nutgate.http"))]
    assert all(r.levelno <= logging.WARNING and not r.exc_info for r in noted), noted
    assert not any("EVILMARK" in r.getMessage() for r in caplog.records)


async def test_a_flood_of_them_is_one_warning_a_second(
    node: NodeHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    for _ in range(30):
        assert (await send_raw(node, MARK + b" / HTTP/1.1\r\n\r\n"))[0] == 400
    await asyncio.sleep(1.1)
    assert (await send_raw(node, MARK + b" / HTTP/1.1\r\n\r\n"))[0] == 400
    seconds = time.monotonic() - started
    lines = [r for r in caplog.records if "malformed HTTP request" in r.getMessage()]
    assert {r.levelno for r in lines} == {logging.WARNING}
    assert 2 <= len(lines) <= seconds + 1  # one a second at most: the first, and the last
    left_out = [int(re.findall(r"\((\d+) more since", r.getMessage())[0]) for r in lines]
    assert len(lines) + sum(left_out) == 31  # every one counted, in a line or as left out
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_the_server_still_serves_after_them(node: NodeHandle) -> None:
    await send_raw(node, MARK + b" / HTTP/1.1\r\n\r\n")
    status, _, body = await send_raw(
        node, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert status == 200, body


async def test_a_header_up_to_the_limit_is_served(node: NodeHandle) -> None:
    """A cashu-ts token of 200 proofs with DLEQ is ~59 KB: [limits] max_header_bytes is 64 KB."""
    raw = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-A: " + b"a" * 60_000
    got, _, _ = await send_raw(node, raw + b"\r\n\r\n")
    assert got == 200
