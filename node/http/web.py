"""HTTP plumbing shared by the routes: request ids, the error middleware, JSON in and out."""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Coroutine
from typing import Any, TypeVar

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from node.errors import (
    BadRequest,
    ClientClosed,
    NodeError,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    internal_error,
)
from node.settings import Settings

log = logging.getLogger("nutgate.http")

REQUEST_ID = web.RequestKey("request_id", str)
BODY_TIMEOUT_S = web.AppKey("body_timeout_s", float)
MAX_HEADER_BYTES = web.AppKey("max_header_bytes", int)  # read by the server (node.http.server)
DEFAULT_BODY_TIMEOUT_S = 60.0

# orjson reads JSON nested to 1024 levels, and writes it to 255 only: a body the node could
# not forward again is refused when read.
MAX_JSON_DEPTH = 255
# Objects one body may hold: a long chat with tools is a few thousand; a body of a million tiny
# parts would cost the loop a second to parse before a 402, so it is refused first, by a count
# at C speed (`_too_many_containers`): every `{` and `[`, spaced or not, empty or not, and
# past the bound those outside strings only.
MAX_JSON_OBJECTS = 100_000
# A JSON string, escapes and all: what remains once they are taken out is the body's structure.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')

LINGER_S = 2.0  # after an early answer (413, 408): read the rest of a body this long, then close

T = TypeVar("T")

# Request ids name reservations, payouts and log lines and authorise nothing: they must never
# repeat, not be secret. 128 bits of a generator seeded from the OS: no syscall per request
# (as secrets has), and unlike a counter they do not tell clients how busy the node is.
_request_ids = random.Random()


def digits(raw: str, places: int) -> int | None:
    """`raw` read as a whole number when it is at most `places` ASCII digits ("²".isdigit() is
    true, and int() refuses a string of 4300 digits or more); else None."""
    if len(raw) > places or not (raw.isascii() and raw.isdigit()):
        return None
    return int(raw)


def new_request_id() -> str:
    return f"{_request_ids.getrandbits(128):032x}"


def server_options(settings: Settings) -> dict[str, Any]:
    """How the node's HTTP server treats connections, for `nutgate serve` and `nutgate run`.

    access_log=None: the node writes its own access line (nutgate.access), with the request id.
    aiohttp's keep-alive timer runs from the connection's start until a whole request head has
    arrived, so it is also what cuts off a client dribbling its headers (slow loris). A body is
    bounded by [limits].body_timeout_s, and what is left of it read for LINGER_S at most.
    """
    return {
        "access_log": None,
        "keepalive_timeout": settings.limits.header_timeout_s,
        "lingering_time": LINGER_S,
    }


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, headers=headers, content_type="application/json"
    )


ANTHROPIC_PATHS = ("/v1/messages",)  # routes whose errors leave in Anthropic's envelope


def speaks_anthropic(path: str) -> bool:
    return path.startswith(ANTHROPIC_PATHS)


def error_response(error: NodeError, request_id: str | None = None, path: str = "") -> web.Response:
    if speaks_anthropic(path):
        body = error.anthropic_envelope(request_id)
        return json_response(body, status=error.status, headers=error.headers)
    return json_response(error.envelope(), status=error.status, headers=error.headers)


async def read_json(request: web.Request) -> tuple[dict[str, Any], bytes]:
    """The body as a JSON object (and its raw bytes), or a 400 that says what is wrong."""
    raw = await read_body(request, request.read())
    if not raw:
        raise BadRequest("the request body is empty; a JSON object is expected")
    if _too_many_containers(raw):
        raise BadRequest(f"the request body holds more than {MAX_JSON_OBJECTS} JSON objects")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH:  # else it cannot be that deep
        try:
            orjson.dumps(body)
        except orjson.JSONEncodeError:
            raise BadRequest(
                f"the request body is nested more than {MAX_JSON_DEPTH} levels deep"
            ) from None
    return body, raw


def _too_many_containers(raw: bytes) -> bool:
    """More than MAX_JSON_OBJECTS objects and arrays, counted at C speed: any `{` or `[` (with
    whitespace or without, empty or not); only past the bound are the ones inside strings told
    apart, by taking the strings out (at C speed too), and a body of that many containers and
    also of more than 200 000 strings is refused without it (no real request is both)."""
    if raw.count(b"{") + raw.count(b"[") <= MAX_JSON_OBJECTS:
        return False
    if raw.count(b'"') - raw.count(b'\\"') > 4 * MAX_JSON_OBJECTS:
        return True
    structure = _JSON_STRING.sub(b"", raw)
    return structure.count(b"{") + structure.count(b"[") > MAX_JSON_OBJECTS


async def read_body(request: web.Request, reading: Coroutine[Any, Any, T]) -> T:
    """`reading` (of the body), bounded: a client dribbling its body gets a 408, not a worker;
    one announcing a body past [limits].max_body_bytes gets a 413 before any of it is read."""
    try:
        if request.content.is_eof():  # the whole body is already here (most requests): no wait
            return await reading
        _refuse_oversized(request, reading)
        limit = request.config_dict.get(BODY_TIMEOUT_S, DEFAULT_BODY_TIMEOUT_S)
        try:
            async with asyncio.timeout(limit):
                return await reading
        except TimeoutError:
            raise RequestTimeout(f"the request body did not arrive within {limit:g} s") from None
    except web.RequestPayloadError:  # e.g. a Content-Encoding the body does not decode with
        raise BadRequest("the request body cannot be decoded as its headers say") from None
    except OSError:  # the connection's error, if it is gone; else ours (a multipart temp file)
        if request.transport is None:
            raise ClientClosed("the client closed the connection before its body arrived") from None
        raise


def _refuse_oversized(request: web.Request, reading: Coroutine[Any, Any, Any]) -> None:
    # aiohttp counts the bytes as they arrive; the Content-Length says it all up front.
    length, most = request.content_length, request.client_max_size
    if length is not None and 0 < most < length:
        reading.close()  # never awaited
        raise PayloadTooLarge(
            f"the request body ({length} bytes) is larger than this node accepts ({most} bytes)"
        )


# Headers whose values are hashed or compared as secrets. HTTP credentials are ASCII (token68,
# base64); other bytes would reach the hash as undecodable text, so they are refused up front.
CREDENTIAL_HEADERS = ("Authorization", "X-Api-Key", "X-Cashu", "X-CSRF-Token")


def check_credential_headers(request: web.Request) -> None:
    for name in CREDENTIAL_HEADERS:
        for value in request.headers.getall(name, ()):
            if not value.isascii():
                raise BadRequest(f"the {name} header must be ASCII", param=name)


def _refuse_nul(request: web.Request) -> None:
    """A NUL character has no place in a URL, and PostgreSQL's text refuses it: a 400 here,
    not a failed query wherever a route passes the value on."""
    if "\x00" in request.path or "\x00" in request.query_string:
        raise BadRequest("the URL holds a NUL character (%00)")


_HTTP_ERRORS: dict[int, type[NodeError]] = {404: NotFound, 413: PayloadTooLarge}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as OpenAI's error envelope (Anthropic's on its routes); a bug
    leaves as a bare 500."""
    request_id = new_request_id()
    request[REQUEST_ID] = request_id
    path = request.path
    try:
        _refuse_nul(request)
        response = await handler(request)
    except NodeError as exc:
        response = error_response(exc, request_id, path)
        if isinstance(exc, (RequestTimeout, PayloadTooLarge)):
            response.force_close()  # the rest of an unread body is not worth waiting for
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(_from_http(exc), request_id, path)
    except Exception:
        log.exception("request %s failed", request_id)
        response = error_response(internal_error(), request_id, path)
    if not response.prepared:
        response.headers["x-request-id"] = request_id
    return response


def _from_http(exc: web.HTTPException) -> NodeError:
    if exc.status == 413:
        return PayloadTooLarge("the request body is larger than this node accepts")
    if exc.status == 404:
        return NotFound("no such endpoint", code="not_found")
    if exc.status == 405:
        error = BadRequest("method not allowed on this endpoint", code="method_not_allowed")
        error.status = 405  # type: ignore[misc]
        return error
    cls = _HTTP_ERRORS.get(exc.status, BadRequest)
    return cls(exc.reason or "bad request")
