"""What an upstream call records for the bill (`upstream.Attempt`): sent once its head went
out, not when the connection failed, and no longer when the upstream refused it with an error
status. The money side charges a failed attempt by it (node/proxy/call.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from node.dev.procs import free_port
from node.errors import UpstreamError, UpstreamTimeout
from node.proxy import upstream
from node.settings.catalogue import UpstreamSection

BODY = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'


async def _chat(request: web.Request) -> web.Response:
    await request.read()
    wanted = request.headers.get("X-Test-Answer", "ok")
    if wanted == "hang":
        await asyncio.sleep(5)
    if wanted == "fail":
        return web.json_response({"error": {"message": "down"}}, status=500)
    return web.json_response({"choices": [], "usage": {"prompt_tokens": 1}})


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _chat)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/v1"
    await runner.cleanup()


async def _call(base: str, answer: str = "ok") -> tuple[upstream.Attempt, Exception | None]:
    section = UpstreamSection(name="u", base_url=base, first_byte_timeout_s=0.5)
    attempt = upstream.Attempt()
    session = upstream.new_session()
    try:
        await upstream.call(
            session,
            section,
            "chat/completions",
            BODY,
            stream=False,
            attempt=attempt,
            extra_headers={"X-Test-Answer": answer},
        )
    except Exception as exc:
        return attempt, exc
    finally:
        await session.close()
    return attempt, None


async def test_an_answered_call_was_sent(base_url: str) -> None:
    attempt, failed = await _call(base_url)
    assert failed is None and attempt.sent


async def test_a_call_timed_out_after_its_head_went_out_was_sent(base_url: str) -> None:
    attempt, failed = await _call(base_url, "hang")
    assert isinstance(failed, UpstreamTimeout) and attempt.sent


async def test_a_call_refused_with_an_error_status_is_not_billed(base_url: str) -> None:
    attempt, failed = await _call(base_url, "fail")
    assert isinstance(failed, UpstreamError) and not attempt.sent


async def test_a_call_that_could_not_connect_was_not_sent() -> None:
    attempt, failed = await _call(f"http://127.0.0.1:{free_port()}/v1")
    assert isinstance(failed, UpstreamError) and not attempt.sent
