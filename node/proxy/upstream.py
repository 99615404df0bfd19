"""Calls to upstream providers over one shared aiohttp session.

The client's credentials never go upstream: each call carries only the upstream's own key from
the configuration. Failures become the node's errors (502/504/429), with nothing of the
upstream's internals passed to the client beyond its error message. `RETRYABLE` are the ones
after which another upstream may be tried (connect error, no first byte in time, 5xx, 429).

Three timeouts per upstream: connect, first byte (headers, and for a stream its first chunk,
an Anthropic stream's first event: a non-stream answer's headers come only once the whole
answer is made), idle (between chunks).

What an upstream may bill: each call records in its `Attempt` whether the request was sent —
its head written to the upstream's connection (the session's `_Request` sees it) — and not
refused with an error status, which providers do not bill (nor an Anthropic stream whose first
event is an `error`: it is refused as its status would be). A connect error is not sent; a
timeout, a client gone while waiting, a broken or oversized answer are (the upstream may write,
and bill, the whole answer); a stream the upstream ended before its first byte bills its prompt
at most (`ended`).
"""

from __future__ import annotations

import asyncio
import functools
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp.connector import Connection

from node.errors import (
    BadRequest,
    NodeError,
    NotServed,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from node.proxy.deadlines import first_byte
from node.proxy.messages_sse import first_event
from node.settings.catalogue import UpstreamSection

MAX_ERROR_BODY = 64 * 1024
MAX_ANSWER_BYTES = 64 * 1024 * 1024  # a plain answer larger than this is not an LLM answer
HEALTH_TIMEOUT_S = 10.0

RETRYABLE = (UpstreamError, UpstreamTimeout, RateLimited)
# The status of each error type Anthropic names (its "Errors" reference), for an `error` event
ANTHROPIC_STATUS = {"invalid_request_error": 400, "authentication_error": 401,
                    "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
                    "rate_limit_error": 429, "overloaded_error": 529}  # fmt: skip


class AnswerTooLarge(UpstreamError):
    """A plain answer past MAX_ANSWER_BYTES: the upstream wrote (and bills) all of it."""


@dataclass
class Attempt:
    """One call's standing with the upstream's bill: `sent` once the request's head has been
    written to the upstream (it may have received the request), False again when the upstream
    refused it with an error status."""

    sent: bool = False
    ended: bool = False  # the upstream ended its answer having written nothing: no more to bill


_ATTEMPT: ContextVar[Attempt | None] = ContextVar("upstream_attempt", default=None)


class _Request(aiohttp.ClientRequest):
    """aiohttp's request, marking the call's `Attempt` sent as its head is written: what a
    trace's on_request_headers_sent would tell, without the five trace events (and their
    objects) aiohttp sends per request once one trace is configured, ~15 µs a call."""

    async def send(self, conn: Connection) -> aiohttp.ClientResponse:
        # returns once the head is written (or buffered, to leave with the body's first
        # bytes): where a trace's on_request_headers_sent would fire, not before, so that a
        # head aiohttp could not write leaves the attempt unsent
        response = await super().send(conn)
        attempt = _ATTEMPT.get()
        if attempt is not None:
            attempt.sent = True
        return response


def new_session() -> aiohttp.ClientSession:
    # limit=0: long LLM calls must not queue behind the default 100-connection cap.
    # No cookie jar: a cookie an upstream sets while answering one client must not go back
    # with another client's request (and keeping none saves work on every call).
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        json_serialize=lambda o: orjson.dumps(o).decode(),
        request_class=_Request,
    )


@dataclass
class Answer:
    """A 200 answer: the whole body (plain), or the first chunk and the rest (stream)."""

    upstream: UpstreamSection
    resp: aiohttp.ClientResponse
    head: bytes
    content_type: str


@functools.lru_cache(maxsize=64)
def _timeout(connect_s: float) -> aiohttp.ClientTimeout:  # immutable: one per value will do
    return aiohttp.ClientTimeout(total=None, sock_connect=connect_s)


def _headers(upstream: UpstreamSection, content_type: str) -> dict[str, str]:
    """The upstream's own credentials: Bearer, or Anthropic's x-api-key and anthropic-version."""
    headers = {"Content-Type": content_type, "Accept-Encoding": "identity"}
    if upstream.kind == "anthropic":
        headers["anthropic-version"] = upstream.anthropic_version
        if upstream.api_key:
            headers["x-api-key"] = upstream.api_key
    elif upstream.api_key:
        headers["Authorization"] = f"Bearer {upstream.api_key}"
    return headers


async def call(
    session: aiohttp.ClientSession,
    upstream: UpstreamSection,
    path: str,
    payload: bytes,
    *,
    stream: bool,
    content_type: str = "application/json",
    attempt: Attempt | None = None,
    extra_headers: dict[str, str] | None = None,
) -> Answer:
    """POST; return once the answer has begun (stream) or is whole (plain), else raise.

    Nothing has reached the client when this raises, so a RETRYABLE error may be retried
    elsewhere. A stream's response stays open: the caller closes `answer.resp`. `attempt`
    tells, whatever happens, whether the upstream may bill the call. `extra_headers`: the
    client's that the upstream's dialect reads (anthropic-version, anthropic-beta).
    """
    headers = _headers(upstream, content_type) | (extra_headers or {})
    resp: aiohttp.ClientResponse | None = None
    try:
        with first_byte(upstream.first_byte_timeout_s):
            resp = await _post(session, upstream, path, payload, headers, attempt)
            if resp.status != 200:
                if attempt is not None:
                    attempt.sent = False  # refused: providers bill no error status
                async with resp:
                    raise await _status_error(upstream, resp)
            head = await resp.content.readany() if stream else b""
            if stream and not head:  # closed before a byte: nothing sent, the next may answer
                if attempt is not None:
                    attempt.ended = True
                resp.close()
                raise UpstreamError(f"upstream {upstream.name} ended the stream before it began")
            if stream and upstream.kind == "anthropic":
                head = await _anthropic_opening(upstream, resp, head, attempt)
        if not stream:
            head = await read_all(upstream, resp)
    except TimeoutError as exc:
        if resp is not None:
            resp.close()
        raise UpstreamTimeout(f"upstream {upstream.name} did not answer in time") from exc
    except aiohttp.ClientError as exc:
        if resp is not None:
            resp.close()
        raise UpstreamError(f"upstream {upstream.name} could not be reached") from exc
    ctype = resp.headers.get("Content-Type", "application/json")
    return Answer(upstream, resp, head, ctype)


async def _anthropic_opening(
    upstream: UpstreamSection, resp: aiohttp.ClientResponse, head: bytes, attempt: Attempt | None
) -> bytes:
    """An Anthropic stream's bytes to the end of its first event, read before anything is
    relayed (a wait for an event already begun). An `error` there (overloaded_error, what a
    plain request gets as a 529) comes instead of the answer, billed nothing: the upstream
    failed before answering, as with an error status, and the next upstream may answer. One
    after message_start is the answer's."""
    first = first_event(head)
    while first is None and len(head) < MAX_ERROR_BODY:  # an opening this long has begun
        more = await resp.content.readany()
        head += more
        first = first_event(head, ended=not more)
        if not more:
            break
    if first is None or first.get("type") != "error":
        return head
    if attempt is not None:
        attempt.sent = False  # refused: Anthropic bills no stream that opens with an error
    resp.close()
    error = first.get("error")
    kind = error.get("type") if isinstance(error, dict) else None
    raise _error_for(upstream, ANTHROPIC_STATUS.get(str(kind), 500), orjson.dumps(first), "1")


async def _post(
    session: aiohttp.ClientSession,
    upstream: UpstreamSection,
    path: str,
    payload: bytes,
    headers: dict[str, str],
    attempt: Attempt | None,
) -> aiohttp.ClientResponse:
    marking = _ATTEMPT.set(attempt)  # for _Request.send
    try:
        return await session.post(
            f"{upstream.base_url}/{path}",
            data=payload,
            headers=headers,
            timeout=_timeout(upstream.connect_timeout_s),
        )
    finally:
        _ATTEMPT.reset(marking)


async def read_all(upstream: UpstreamSection, resp: aiohttp.ClientResponse) -> bytes:
    if resp.content.is_eof():  # the whole answer came with its head (a short one): no wait
        async with resp:
            whole = resp.content.read_nowait()
            if len(whole) > MAX_ANSWER_BYTES:
                raise AnswerTooLarge(f"upstream {upstream.name} answered with too large a body")
        return whole
    parts: list[bytes] = []
    size = 0
    body = Chunks(upstream, resp)
    async with resp:
        try:
            async for chunk in body:
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise AnswerTooLarge(f"upstream {upstream.name} answered with too large a body")
                parts.append(chunk)
        finally:
            body.close()
    return b"".join(parts)


class Chunks:
    """The rest of the body, chunk by chunk; TimeoutError after `idle_timeout_s` of silence.

    A stream waits for most of its chunks, and a timer per wait (asyncio.timeout) was a good
    part of the relay's work per chunk with thousands of streams open. Here one timer serves
    a whole stream: armed at a wait when none is, it checks on firing whether the wait now
    under way is as old as the limit, and if not, re-arms for when it would be. It times only
    its own waits: a consumer that stops iterating (a client gone) is never cancelled by it."""

    def __init__(self, upstream: UpstreamSection, resp: aiohttp.ClientResponse) -> None:
        self.content, self.limit_s = resp.content, upstream.idle_timeout_s
        self.loop = asyncio.get_running_loop()
        self.waiting_since: float | None = None  # the wait under way, on the loop's clock
        self.timer: asyncio.TimerHandle | None = None
        self.expired = False
        self.waited_s = 0.0  # the time spent waiting for the upstream, all told
        self._task: asyncio.Task[Any] | None = None
        self._cancelling = 0

    def __aiter__(self) -> Chunks:
        return self

    async def __anext__(self) -> bytes:
        data = await self._wait()  # at once when a chunk has arrived; b"" at the end
        if data:
            return data
        self.close()  # the end: no timer is left to hold the answer for its idle limit
        raise StopAsyncIteration

    async def _wait(self) -> bytes:
        self.waiting_since = since = self.loop.time()
        started = time.perf_counter()  # the loop's clock is coarse (uvloop: ms, once a turn)
        if self.timer is None:
            if self._task is None:
                self._task = asyncio.current_task()
                self._cancelling = self._task.cancelling() if self._task is not None else 0
            self.timer = self.loop.call_at(since + self.limit_s, self._check)
        try:
            return await self.content.readany()
        except asyncio.CancelledError:
            task = self._task
            if self.expired and task is not None and task.uncancel() <= self._cancelling:
                raise TimeoutError from None
            raise
        finally:
            self.waiting_since = None
            self.waited_s += time.perf_counter() - started

    def _check(self) -> None:
        self.timer = None
        since = self.waiting_since
        if since is None:  # not waiting: the next wait arms it again
            return
        due = since + self.limit_s
        if self.loop.time() < due:
            self.timer = self.loop.call_at(due, self._check)
        elif self._task is not None and not self.expired:
            self.expired = True
            self._task.cancel()

    def close(self) -> None:
        """No more waits: the timer goes (else it holds the answer until the idle limit)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


async def healthy(session: aiohttp.ClientSession, upstream: UpstreamSection) -> bool:
    """True when the upstream answers GET /models with 200, or says it has no such route
    (Azure-style deployments and some local servers serve chat without a model list)."""
    headers = _headers(upstream, "application/json")
    try:
        async with asyncio.timeout(min(HEALTH_TIMEOUT_S, upstream.first_byte_timeout_s)):
            async with session.get(f"{upstream.base_url}/models", headers=headers) as resp:
                await resp.read()
                return resp.status in (200, 404, 405)  # 404/405: up, with no model list
    except (TimeoutError, aiohttp.ClientError):
        return False


async def _status_error(upstream: UpstreamSection, resp: aiohttp.ClientResponse) -> NodeError:
    try:
        async with asyncio.timeout(upstream.idle_timeout_s):
            raw = await resp.content.read(MAX_ERROR_BODY)
    except (aiohttp.ClientError, TimeoutError):
        raw = b""
    return _error_for(upstream, resp.status, raw, resp.headers.get("Retry-After", "1"))


def _error_for(upstream: UpstreamSection, status: int, raw: bytes, retry: str) -> NodeError:
    """The node's error for an upstream's error `status` with body `raw`."""
    message = _error_message(raw) or f"HTTP {status}"
    if upstream.api_key:  # some upstreams quote the key they were sent
        message = message.replace(upstream.api_key, "[redacted]")
    if status in (404, 405) and _error_field(raw, "param") is None:
        if _error_field(raw, "code") == "model_not_found":  # a model the node sells for it
            return UpstreamError(f"upstream {upstream.name} failed: {message}")
        return NotServed(f"upstream {upstream.name} does not serve this endpoint: {message}")
    if status in (400, 404, 413, 415, 422):  # a field of the request: the client's
        return BadRequest(
            f"upstream {upstream.name} refused the request: {message}", code="upstream_rejected"
        )
    if status == 429:
        return RateLimited(
            f"upstream {upstream.name} is rate limiting: {message}",
            code="upstream_rate_limited",
            headers={"Retry-After": retry},
        )
    if status in (401, 403):
        message = "upstream refused the node's credentials"
    return UpstreamError(f"upstream {upstream.name} failed: {message}", code="upstream_error")


def _error_field(raw: bytes, name: str) -> str | None:
    """`code` or `param` of an OpenAI error envelope, if the body is one and has it."""
    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    value = error.get(name) if isinstance(error, dict) else None
    return value if isinstance(value, str) else None


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
