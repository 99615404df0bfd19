"""First byte of a Messages stream through the node, against the upstream's own first byte.

    python -m bench.messages [--n 200]

Starts the mock Anthropic upstream (tests/support/anthropic_upstream.py) and the OpenAI-
compatible mock (tests/support/mock_upstream.py), each in a process of its own (this module with
--serve), a bare proxy (bench/bare_proxy.py) on the second, and one node selling
`claude-bench` on the first (kind = "anthropic") and `bench-model` on the second. Then, one
streamed request at a time, in turn, measures the seconds from sending to the first byte of:

    anthropic         the Anthropic mock itself, /v1/messages
    node-messages     the node, /v1/messages on claude-bench (passed through)
    openai            the OpenAI-compatible mock itself, /v1/chat/completions
    bare              the bare proxy, /v1/chat/completions (what any aiohttp pass-through adds)
    node-chat         the node, /v1/chat/completions on bench-model (the baseline: the path
                      every earlier bench measured)
    node-translated   the node, /v1/messages on bench-model (translated to chat and back)

Two delays per target, medians over the run:

    added   its time to the first byte less its upstream's, each asked directly: the whole
            request path (payment, the durable reservation, the upstream call) and the relay
    relay   from the upstream's first write of the answer's body to the client's first byte
            (both on CLOCK_MONOTONIC: each mock notes when it first wrote a streamed answer and
            tells it at GET /bench/first-write), less the same for the upstream asked directly
            (the loopback's own share). This is what issue 24 asks: the first byte of a
            Messages stream ≤ 1 ms after the upstream's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import deque
from pathlib import Path
from statistics import median

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from bench.nodes import BenchNode
from bench.procs import PY, Proc, bare_proxy
from node.dev.procs import free_port
from tests.support.anthropic_upstream import API_KEY

PROMPT = [{"role": "user", "content": "Say hello to the benchmark, please."}]
ANTHROPIC_TOML = """
[[upstreams]]
name = "claude"
kind = "anthropic"
base_url = "{url}/v1"
api_key = "{key}"
list_models = false

[[models]]
id = "claude-bench"
upstream = "claude"
input_usd_per_mtok = 3.0
output_usd_per_mtok = 15.0
max_output_tokens = 1000
"""


FIRST_WRITES: deque[float] = deque(maxlen=64)  # in a mock's process: its first body writes
STAMPED = web.ResponseKey("bench_stamped", bool)


async def _stamped_write(self: web.StreamResponse, data: bytes | bytearray | memoryview) -> None:
    if not self.get(STAMPED):  # the answer's first body byte leaves now
        self[STAMPED] = True
        FIRST_WRITES.append(time.monotonic())
    await _write(self, data)


_write = web.StreamResponse.write


@web.middleware
async def _first_write(request: web.Request, handler: Handler) -> web.StreamResponse:
    """GET /bench/first-write, ahead of the mock's own checks (the Anthropic one wants a key)."""
    if request.path == "/bench/first-write":
        return web.json_response({"t": FIRST_WRITES[-1] if FIRST_WRITES else None})
    return await handler(request)


def serve(kind: str, port: int) -> None:
    """A mock upstream (`anthropic`, or `openai`: tests/support) that notes its first writes."""
    from tests.support.anthropic_upstream import MockAnthropic
    from tests.support.mock_upstream import MockUpstream

    mock = MockAnthropic() if kind == "anthropic" else MockUpstream()
    mock.received = deque(maxlen=1)
    # this bench process times aiohttp's own first write of each answer
    web.StreamResponse.write = _stamped_write  # type: ignore[method-assign]
    mock.app.middlewares.insert(0, _first_write)
    web.run_app(mock.app, host="127.0.0.1", port=port, print=None, access_log=None)


def stamped_upstream(kind: str, work: Path) -> Proc:
    port = free_port()
    args = [PY, "-m", "bench.messages", "--serve", kind, "--port", str(port)]
    return Proc(kind, args, port, work).start()


Target = tuple[str, str, dict[str, str], str, str]  # URL, path, headers, model, upstream URL


async def first_byte(session: aiohttp.ClientSession, target: Target) -> tuple[float, float]:
    """Seconds to the first byte from sending, and from the upstream's first write."""
    url, path, headers, model, upstream = target
    body = {"model": model, "max_tokens": 10, "messages": PROMPT, "stream": True}
    t0 = time.monotonic()
    first = 0.0
    async with session.post(url + path, json=body, headers=headers) as resp:
        assert resp.status == 200, (url, path, resp.status, await resp.text())
        async for chunk in resp.content.iter_any():
            if not first and chunk:
                first = time.monotonic()
    async with session.get(upstream + "/bench/first-write") as resp:
        wrote = (await resp.json())["t"]
    return first - t0, first - wrote


async def measure(targets: dict[str, Target], n: int) -> dict[str, list[tuple[float, float]]]:
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
    async with aiohttp.ClientSession() as session:
        for i in range(n + 5):
            for name, target in targets.items():
                took = await first_byte(session, target)
                if i >= 5:  # the first 5 warm the connections
                    times[name].append(took)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200, help="requests to each target")
    parser.add_argument("--serve", choices=("anthropic", "openai"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:  # a mock upstream's own process
        serve(args.serve, args.port)
        return
    with tempfile.TemporaryDirectory(prefix="nutgate-bench-messages-") as tmp:
        work = Path(tmp)
        claude, openai = stamped_upstream("anthropic", work), stamped_upstream("openai", work)
        for proc in (claude, openai):
            proc.wait_ready("/bench/first-write")
        node = BenchNode("node", work, openai.url, None, None)
        with node.config.open("a") as config:
            config.write(ANTHROPIC_TOML.format(url=claude.url, key=API_KEY))
        node.start()
        keys = work / "keys.txt"
        keys.write_text(node.keys[0] + "\n")
        bare = bare_proxy(work, openai.url, keys, None).wait_ready("/health")
        try:
            key = {"Authorization": f"Bearer {node.keys[0]}"}
            upstream_headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
            c, o = claude.url, openai.url
            targets: dict[str, Target] = {
                "anthropic": (c, "/v1/messages", upstream_headers, "claude-bench", c),
                "node-messages": (node.url, "/v1/messages", key, "claude-bench", c),
                "openai": (o, "/v1/chat/completions", {}, "bench-model", o),
                "bare": (bare.url, "/v1/chat/completions", key, "bench-model", o),
                "node-chat": (node.url, "/v1/chat/completions", key, "bench-model", o),
                "node-translated": (node.url, "/v1/messages", key, "bench-model", o),
            }
            times = asyncio.run(measure(targets, args.n))
        finally:
            node.proc.stop()
            bare.stop()
            claude.stop()
            openai.stop()
    report(times)


UPSTREAM_OF = {"node-messages": "anthropic", "bare": "openai", "node-chat": "openai",
               "node-translated": "openai"}  # fmt: skip


def report(times: dict[str, list[tuple[float, float]]]) -> None:
    first = {name: median(t[0] for t in ts) * 1e3 for name, ts in times.items()}
    relay = {name: median(t[1] for t in ts) * 1e3 for name, ts in times.items()}
    relay_p90 = {name: sorted(t[1] for t in ts)[len(ts) * 9 // 10] * 1e3
                 for name, ts in times.items()}  # fmt: skip
    added = {k: first[k] - first[up] for k, up in UPSTREAM_OF.items()}
    relayed = {k: relay[k] - relay[up] for k, up in UPSTREAM_OF.items()}
    out = {
        "first_byte_p50_ms": {k: round(v, 3) for k, v in first.items()},
        "upstream_write_to_first_byte_p50_ms": {k: round(v, 3) for k, v in relay.items()},
        "upstream_write_to_first_byte_p90_ms": {k: round(v, 3) for k, v in relay_p90.items()},
        "added_ms": {k: round(v, 3) for k, v in added.items()},
        "relay_delay_ms": {k: round(v, 3) for k, v in relayed.items()},
        "messages_relay_met": relayed["node-messages"] <= 1.0,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
