"""Watching each request: its `Trace`, the access log line, and the metrics it moves.

The observe middleware sits inside the error middleware (so the request id exists and the
exceptions are still visible) and outside the rate limiter (so refused requests are counted).
Handlers and the metered call fill in the trace as they learn things:

    trace = trace_of(request)
    trace.model, trace.upstream = model.id, route.upstream.name
    with trace.upstream_call(): answer = await upstream.call(...)   # upstream time
    trace.upstream_s += chunks.waited_s                              # a stream's waits
    trace.upstream_failed(code)                                      # an upstream call failed
    trace.cost_msat = charged

Overhead = request time minus time spent waiting on the upstream. For a stream, time spent
writing to a slow client counts as overhead too: it is time the node, not the upstream, took.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from node.errors import ClientClosed, NodeError
from node.http.metrics import Metrics
from node.http.web import REQUEST_ID

access_log = logging.getLogger("nutgate.access")

QUIET_PATHS = frozenset({"/health", "/metrics"})  # polled by machines: logged at DEBUG
MAX_LOGGED_PATH = 512  # characters of a path in the access log (clients choose model ids)
CLIENT_CLOSED = ClientClosed.status  # for a client that went away before the answer


@dataclass
class Trace:
    started: float = field(default_factory=time.perf_counter)
    model: str = ""
    upstream: str = ""  # the upstream called last
    cost_msat: int = 0
    upstream_s: float = 0.0
    reached_upstream: bool = False
    upstream_errors: list[tuple[str, str]] = field(default_factory=list)  # (upstream, code)

    def upstream_failed(self, code: str | None) -> None:
        """The current upstream failed: before the answer (then maybe failed over), or mid-way."""
        self.upstream_errors.append((self.upstream, code or "upstream_error"))

    def upstream_call(self) -> _UpstreamCall:
        """`with trace.upstream_call():` adds the block's time to `upstream_s`."""
        self.reached_upstream = True
        return _UpstreamCall(self)


class _UpstreamCall:
    # a class, not @contextmanager: no generator to make, start and close per call
    __slots__ = ("started", "trace")

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.trace.upstream_s += time.perf_counter() - self.started


TRACE = web.RequestKey("trace", Trace)


def trace_of(request: web.Request) -> Trace:
    """The request's trace; a detached one where no observe middleware runs."""
    trace = request.get(TRACE)
    return trace if trace is not None else Trace()


def middleware(metrics: Metrics) -> Middleware:
    """The observe middleware, recording into `metrics`."""

    @web.middleware
    async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        trace = Trace()
        request[TRACE] = trace
        status, code = 500, None
        try:
            response = await handler(request)
            status = response.status
            return response
        except NodeError as exc:
            status, code = exc.status, exc.code
            raise
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = CLIENT_CLOSED
            raise
        finally:
            _record(request, trace, status, code, metrics)

    return observe_middleware


# Path parameters that are credentials: a Lightning invoice's id hands out the key it bought.
SECRET_PARAMS = ("{invoice_id}",)


def route_of(request: web.Request) -> str:
    resource = getattr(request.match_info.route, "resource", None)
    return resource.canonical if resource is not None else "unmatched"


def _record(
    request: web.Request, trace: Trace, status: int, code: str | None, metrics: Metrics
) -> None:
    elapsed = time.perf_counter() - trace.started
    route = route_of(request)
    series = metrics.request_series(route, trace.model, status)
    series.requests.inc()
    series.latency.observe(elapsed)
    if trace.reached_upstream:
        series.overhead.observe(max(0.0, elapsed - trace.upstream_s))
    if trace.cost_msat:
        series.charged_msat.inc(trace.cost_msat)
    for upstream, upstream_code in trace.upstream_errors:
        metrics.upstream_errors.labels(upstream, upstream_code).inc()
    # As sent (percent-encoded: a %0A cannot forge a log line), bounded, never the query
    # string (it may carry a token); a path holding a credential, as its route.
    path = request.rel_url.raw_path[:MAX_LOGGED_PATH]
    if any(param in route for param in SECRET_PARAMS):
        path = route
    fields = {
        "request_id": request.get(REQUEST_ID),
        "method": request.method,
        "route": route,
        "path": path,
        "status": status,
        "model": trace.model or None,
        "cost_msat": trace.cost_msat,
        "duration_ms": round(elapsed * 1000, 2),
        "upstream_ms": round(trace.upstream_s * 1000, 2) if trace.reached_upstream else None,
        "error": code or (trace.upstream_errors[-1][1] if trace.upstream_errors else None),
    }
    level = logging.DEBUG if request.path in QUIET_PATHS else logging.INFO
    access_log.log(level, "%s %s %s", request.method, path, status, extra={"fields": fields})


async def _stamp_request_id(request: web.BaseRequest, response: web.StreamResponse) -> None:
    # Runs as headers are sent: streamed answers, prepared in the handler, get the id too.
    request_id = request.get(REQUEST_ID)
    if request_id:
        response.headers.setdefault("x-request-id", request_id)
        response.headers.setdefault("x-routstr-request-id", request_id)  # Routstr's name


def setup(app: web.Application, metrics: Metrics) -> None:
    """`GET /metrics`, and the request-id stamp on every response."""
    app.router.add_get("/metrics", metrics.handler)
    app.on_response_prepare.append(_stamp_request_id)
