"""The two ends of bench/streams.py: a mock upstream that streams to many clients on one timer,
and clients that open many streams and time their chunks.

    python -m bench.stream_ends --serve PORT --chunks 300 --interval 0.02
    python -m bench.stream_ends --client URL --keys FILE --n N --ramp S --at T --out FILE [--probe]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

from aiohttp import web

SLOTS = 20
CHUNK = (
    b'{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":0,"model":"bench-model",'
    b'"choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}],"t":%.6f}'
)
FINISH = (
    b'{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":0,"model":"bench-model",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'
)
USAGE = (
    b'{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":0,"model":"bench-model",'
    b'"choices":[],"usage":{"prompt_tokens":20,"completion_tokens":%d,"total_tokens":%d}}'
)


def _frame(payload: bytes) -> bytes:
    """One SSE event as one HTTP/1.1 chunk."""
    event = b"data: " + payload + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(event), event)


# --- the mock upstream -------------------------------------------------------------------


class _Stream:
    def __init__(self, transport: asyncio.Transport, left: int) -> None:
        self.transport, self.left = transport, left
        self.done = asyncio.get_running_loop().create_future()


class Upstream:
    def __init__(self, chunks: int, interval_s: float) -> None:
        self.chunks, self.slot_s = chunks, interval_s / SLOTS
        self.slots: list[list[_Stream]] = [[] for _ in range(SLOTS)]
        self.joined = 0
        self.end = _frame(FINISH) + _frame(USAGE % (chunks, chunks + 20)) + _frame(b"[DONE]")

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tick(loop, loop.time(), -1)

    def _tick(self, loop: asyncio.AbstractEventLoop, t0: float, done: int) -> None:
        """The slots due since the last tick, each once (a late tick catches up, but no stream
        gets two chunks in one), then the next tick at the next slot's time."""
        due = int((loop.time() - t0) / self.slot_s)
        for k in range(max(done + 1, due - SLOTS + 1), due + 1):
            self._write(self.slots[k % SLOTS])
        loop.call_at(t0 + (due + 1) * self.slot_s, self._tick, loop, t0, due)

    def _write(self, slot: list[_Stream]) -> None:
        if not slot:
            return
        frame = _frame(CHUNK % time.monotonic())
        kept = []
        for s in slot:
            if s.transport.is_closing():
                s.done.set_result(None)
                continue
            s.transport.write(frame)
            s.left -= 1
            if s.left > 0:
                kept.append(s)
            else:
                s.transport.write(self.end)
                s.done.set_result(None)
        slot[:] = kept

    async def chat(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        assert request.transport is not None
        stream = _Stream(request.transport, self.chunks - 1)
        stream.transport.write(_frame(CHUNK % time.monotonic()))  # the first at once
        self.slots[self.joined % SLOTS].append(stream)
        self.joined += 1
        await stream.done
        await out.write_eof()
        return out


async def _models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": "bench-model"}]})


def serve(port: int, chunks: int, interval_s: float) -> None:
    from node.cli import new_event_loop

    upstream = Upstream(chunks, interval_s)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", upstream.chat)
    app.router.add_get("/v1/models", _models)

    async def ticker(app: web.Application) -> AsyncIterator[None]:
        upstream.start()
        yield

    app.cleanup_ctx.append(ticker)
    web.run_app(
        app, host="127.0.0.1", port=port, print=None, access_log=None, loop=new_event_loop()
    )


# --- the clients ---------------------------------------------------------------------------


def _returning(client: _Client) -> Callable[[], _Client]:
    return lambda: client


class _Client(asyncio.Protocol):
    def __init__(self, request: bytes, probe: bool, done: asyncio.Future[None]) -> None:
        self.request, self.probe, self.done = request, probe, done
        self.sent = self.first = 0.0
        self.head = self.tail = self.buffer = b""
        self.delays: list[float] = []
        self.gaps: list[float] = []
        self._last: tuple[float, float] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.sent = time.monotonic()
        # a TCP connection's transport (uvloop's is no asyncio.Transport subclass)
        cast(asyncio.WriteTransport, transport).write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if not self.first:
            self.first, self.head = now, data[:12]
        self.tail = self.tail[-2048:] + data
        if self.probe:
            self._time(now, data)

    def _time(self, now: float, data: bytes) -> None:
        *events, self.buffer = (self.buffer + data).split(b"\n\n")
        for event in events:
            at = event.rfind(b'"t":')
            if at < 0:
                continue
            wrote = float(event[at + 4 : event.index(b"}", at)])
            self.delays.append(now - wrote)
            if self._last is not None:
                self.gaps.append((now - self._last[0]) - (wrote - self._last[1]))
            self._last = (now, wrote)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def _clients(
    url: str, keys: list[str], n: int, ramp_s: float, probe: bool, at: float
) -> dict[str, Any]:
    host, port = url.split("//")[1].split(":")
    loop = asyncio.get_running_loop()
    await asyncio.sleep(at - time.monotonic())  # both clients begin together, started up
    body = b'{"model":"bench-model","max_tokens":400,"stream":true,"messages":[{"role":"user","content":"Stream, please."}]}'  # noqa: E501
    clients, waits = [], []
    start = loop.time()
    for i in range(n):
        await asyncio.sleep(max(0.0, start + ramp_s * i / max(n, 1) - loop.time()))
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
            f"Authorization: Bearer {keys[i % len(keys)]}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        done: asyncio.Future[None] = loop.create_future()
        client = _Client(head + body, probe, done)
        clients.append(client)
        waits.append(done)
        await loop.create_connection(_returning(client), host, int(port))
    await asyncio.gather(*waits)
    return {
        "status": Counter(c.head[9:12].decode() for c in clients),
        "ended": sum(b"data: [DONE]" in c.tail for c in clients),
        "with_cost": sum(b'"cost_msat"' in c.tail for c in clients),
        "first_byte": [c.first - c.sent for c in clients if c.first],
        "delays": [d for c in clients for d in c.delays[5:]],  # past the first, ramp-time ones
        "gaps": [g for c in clients for g in c.gaps[5:]],
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--serve", type=int, help="the mock upstream's port")
    p.add_argument("--chunks", type=int, default=300)
    p.add_argument("--interval", type=float, default=0.02)
    p.add_argument("--client", help="a client process: the target's URL")
    p.add_argument("--keys", type=Path)
    p.add_argument("--n", type=int)
    p.add_argument("--ramp", type=float)
    p.add_argument("--at", type=float, help="when the clients begin (CLOCK_MONOTONIC)")
    p.add_argument("--probe", action="store_true")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.chunks, args.interval)
        return
    from node.cli import new_event_loop

    keys = args.keys.read_text().split()
    clients = _clients(args.client, keys, args.n, args.ramp, args.probe, args.at)
    args.out.write_text(json.dumps(new_event_loop().run_until_complete(clients)))


if __name__ == "__main__":
    main()
