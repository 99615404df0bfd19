"""The node's HTTP server: aiohttp's, answering the requests aiohttp cannot parse itself.

A request aiohttp's parser refuses (a bad request line, a line or header too long, too many
headers, two Content-Lengths, Transfer-Encoding with Content-Length, bad chunking…) never
reaches the application or its middlewares: aiohttp answers it from its connection handler, in
text quoting the offending bytes, and logs an ERROR with a traceback. Sent in a loop, that is
a log flood that costs nothing. Here the answer is OpenAI's error envelope (400, or 431 for a
line or headers too large; `Connection: close`; none of the request's bytes), and the log gets
one WARNING line without traceback, at most one a second, saying how many were left out.

`NodeRunner` is `web.AppRunner` with that connection handler, and the application's
`[limits] max_header_bytes` for a request line or header (aiohttp's own is 8190 bytes: a
cashu-ts token of 28 proofs with DLEQ is longer); `run` is `web.run_app` on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong

from node.errors import BadRequest, NodeError, internal_error
from node.http.web import MAX_HEADER_BYTES, error_response

log = logging.getLogger("nutgate.http")

LOG_EVERY_S = 1.0
GC_YOUNG = 10_000  # the cyclic GC's first threshold, once the node is up (see `run`)
# The parser's words ("Duplicate Content-Length", "Invalid character in chunk size") end where
# it quotes the client's bytes (after a colon, or a quote), which a log must not carry.
_QUOTING = re.compile(r":|\s+b?['\"]")


class HeadersTooLarge(NodeError):
    status = 431
    type = "invalid_request_error"
    default_code = "request_header_fields_too_large"


class ParseErrorLog:
    """One WARNING a second at most for requests that could not be parsed."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last = -LOG_EVERY_S
        self._left_out = 0

    def note(self, exc: BaseException | None) -> None:
        now = self._clock()
        if now - self._last < LOG_EVERY_S:
            self._left_out += 1
            return
        left_out, self._left_out, self._last = self._left_out, 0, now
        log.warning(  # no client address, as in every other line (see the README)
            "malformed HTTP request refused: %s (%d more since the last such line)",
            summary(exc),
            left_out,
        )


def summary(exc: BaseException | None) -> str:
    """What was wrong, in the parser's words, without the request's own bytes."""
    if isinstance(exc, LineTooLong):
        return "request line or header too long"
    message = str(exc.message) if isinstance(exc, HttpProcessingError) else ""
    words = _QUOTING.split(message.split("\n", 1)[0], maxsplit=1)[0]
    words = "".join(c for c in words if c.isascii() and c.isprintable()).strip()[:80]
    return words or type(exc).__name__


def refusal(exc: BaseException | None) -> NodeError:
    too_large = isinstance(exc, LineTooLong) or (
        isinstance(exc, HttpProcessingError) and "Too many headers" in str(exc.message)
    )
    if too_large:
        return HeadersTooLarge("the request line or its headers are too large, or too many")
    return BadRequest("the request is not valid HTTP/1.1", code="malformed_http_request")


class _Connection(web.RequestHandler):
    """aiohttp's connection handler, with the node's answer to what it cannot parse."""

    def __init__(self, manager: web.Server, *, parse_errors: ParseErrorLog, **kwargs: Any):
        super().__init__(manager, **kwargs)
        self._parse_errors = parse_errors

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp's: an answer has begun, none can follow
            raise ConnectionError("an answer was already being sent")
        if status == 500:  # a handler failed outside the error middleware: a bug
            log.error("a request failed outside the error middleware", exc_info=exc)
            error = internal_error()
        elif status == 504:  # a handler timed out outside the error middleware
            error = NodeError("the request took too long", code="timeout")
            error.status = 504  # type: ignore[misc]
        else:
            self._parse_errors.note(exc)
            error = refusal(exc)
        response = error_response(error)
        response.headers["Connection"] = "close"
        response.force_close()
        return response


class _Server(web.Server):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.parse_errors = ParseErrorLog()

    def __call__(self) -> web.RequestHandler:
        # what web.Server.__call__ does, with the node's handler class
        return _Connection(self, loop=self._loop, parse_errors=self.parse_errors, **self._kwargs)


class NodeRunner(web.AppRunner):
    """`web.AppRunner` whose connections answer unparsable requests the node's way."""

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        largest = self.app.get(MAX_HEADER_BYTES)  # [limits] max_header_bytes (aiohttp: 8190)
        if largest is not None:
            made._kwargs.setdefault("max_line_size", largest)
            made._kwargs.setdefault("max_field_size", largest)
        return _Server(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=made._loop,
            **made._kwargs,
        )


def run(
    app: web.Application, host: str, port: int, loop: asyncio.AbstractEventLoop, **options: Any
) -> None:
    """Serve `app` until SIGINT or SIGTERM, then shut down gracefully: `web.run_app`, on the
    node's runner."""

    async def serve() -> None:
        runner = NodeRunner(app, handle_signals=True, **options)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            # What start-up made (modules, the price catalogue: ~95 000 objects) lives as long
            # as the node: out of the cyclic GC's sight, whose full passes over it took ~40 ms
            # each, on the loop every open stream waits on.
            gc.freeze()
            # The young generation is collected whenever the objects made outnumber those
            # freed by its threshold: at Python's 700, the objects of the requests in flight
            # alone passed it every few dozen requests, for collections (and every tenth an
            # older one) that freed nothing under load, each request's objects going with
            # their reference counts: 3-5% of a short request's CPU. Cycles, if any, are
            # still collected, later.
            gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    asyncio.set_event_loop(loop)
    task = loop.create_task(serve())
    try:
        loop.run_until_complete(task)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, web.GracefulExit):
            loop.run_until_complete(task)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
