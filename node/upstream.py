"""Calls to upstream providers over one shared aiohttp session.

The client's credentials never go upstream: each call carries only the upstream's own key from
the configuration. Failures become the node's errors (502/504), with nothing of the upstream's
internals passed to the client beyond its error message.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from node.errors import BadRequest, NodeError, RateLimited, UpstreamError, UpstreamTimeout
from node.settings import UpstreamSection

MAX_ERROR_BODY = 64 * 1024


def new_session() -> aiohttp.ClientSession:
    # limit=0: long LLM calls must not queue behind the default 100-connection cap.
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
    return aiohttp.ClientSession(
        connector=connector, json_serialize=lambda o: orjson.dumps(o).decode()
    )


def _timeout(upstream: UpstreamSection) -> aiohttp.ClientTimeout:
    # No total limit (a stream may run long); the read timeout bounds the first byte and each gap.
    return aiohttp.ClientTimeout(
        total=None, sock_connect=upstream.connect_timeout_s, sock_read=upstream.timeout_s
    )


async def post(
    session: aiohttp.ClientSession,
    upstream: UpstreamSection,
    path: str,
    payload: bytes,
    content_type: str = "application/json",
) -> aiohttp.ClientResponse:
    """POST to the upstream; return the response once its status is 200, else raise."""
    headers = {"Content-Type": content_type, "Accept-Encoding": "identity"}
    if upstream.api_key:
        headers["Authorization"] = f"Bearer {upstream.api_key}"
    try:
        resp = await session.post(
            f"{upstream.base_url}/{path}", data=payload, headers=headers, timeout=_timeout(upstream)
        )
    except TimeoutError as exc:
        raise UpstreamTimeout(f"upstream {upstream.name} did not answer in time") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamError(f"upstream {upstream.name} could not be reached") from exc
    if resp.status != 200:
        async with resp:
            raise await _status_error(upstream, resp)
    return resp


async def _status_error(upstream: UpstreamSection, resp: aiohttp.ClientResponse) -> NodeError:
    try:
        raw = await resp.content.read(MAX_ERROR_BODY)
    except (aiohttp.ClientError, TimeoutError):
        raw = b""
    message = _error_message(raw) or f"HTTP {resp.status}"
    if resp.status in (400, 404, 413, 422):
        return BadRequest(
            f"upstream {upstream.name} refused the request: {message}", code="upstream_rejected"
        )
    if resp.status == 429:
        retry = resp.headers.get("Retry-After", "1")
        return RateLimited(
            f"upstream {upstream.name} is rate limiting: {message}",
            code="upstream_rate_limited",
            headers={"Retry-After": retry},
        )
    if resp.status in (401, 403):
        message = "upstream refused the node's credentials"
    return UpstreamError(f"upstream {upstream.name} failed: {message}", code="upstream_error")


def _error_message(raw: bytes) -> str:
    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:500]
        if isinstance(error, str):
            return error[:500]
    return ""
