"""First byte of a Messages stream through the node, against the upstream's own first byte.

    python -m bench.messages [--n 200]

Starts the mock Anthropic upstream (tests/support/anthropic_upstream.py) and the OpenAI-
compatible mock (bench/upstream_server.py), each in a process of its own, and one node selling
`claude-bench` on the first (kind = "anthropic") and `bench-model` on the second. Then, one
streamed request at a time, in turn, measures the seconds from sending to the first byte of:

    anthropic         the Anthropic mock itself, /v1/messages
    node-messages     the node, /v1/messages on claude-bench (passed through)
    openai            the OpenAI-compatible mock itself, /v1/chat/completions
    node-chat         the node, /v1/chat/completions on bench-model (the baseline: the path
                      every earlier bench measured)
    node-translated   the node, /v1/messages on bench-model (translated to chat and back)

and prints the medians, each node's delay over its upstream's, and the ratio of the Messages
delay to the chat delay measured in the same run. Target: Messages delay ≤ 1 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from statistics import median

import aiohttp

from bench.nodes import BenchNode
from bench.procs import PY, Proc, mock_upstream
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
Target = tuple[str, str, dict[str, str], str]  # base URL, path, headers, model


def anthropic_upstream(work: Path) -> Proc:
    port = free_port()
    code = (
        "import sys; from aiohttp import web; "
        "from tests.support.anthropic_upstream import MockAnthropic; "
        "m = MockAnthropic(); import collections; m.received = collections.deque(maxlen=1); "
        "web.run_app(m.app, host='127.0.0.1', port=int(sys.argv[1]), print=None, access_log=None)"
    )
    return Proc("anthropic", [PY, "-c", code, str(port)], port, work).start()


def wait_answering(proc: Proc, timeout_s: float = 60.0) -> None:
    """Until the server answers HTTP at all (the Anthropic mock wants a key for any 200)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(proc.url + "/v1/models", timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{proc.name} not answering after {timeout_s}s:\n{proc.tail()}")


async def first_byte(session: aiohttp.ClientSession, target: Target) -> float:
    url, path, headers, model = target
    body = {"model": model, "max_tokens": 10, "messages": PROMPT, "stream": True}
    t0 = time.perf_counter()
    async with session.post(url + path, json=body, headers=headers) as resp:
        assert resp.status == 200, (url, path, resp.status, await resp.text())
        first = 0.0
        async for chunk in resp.content.iter_any():
            if not first and chunk:
                first = time.perf_counter() - t0
    return first


async def measure(targets: dict[str, Target], n: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in targets}
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nutgate-bench-messages-") as tmp:
        work = Path(tmp)
        claude, openai = anthropic_upstream(work), mock_upstream(work)
        wait_answering(claude)
        openai.wait_ready("/v1/models")
        node = BenchNode("node", work, openai.url, None, None)
        with node.config.open("a") as config:
            config.write(ANTHROPIC_TOML.format(url=claude.url, key=API_KEY))
        node.start()
        try:
            key = {"Authorization": f"Bearer {node.keys[0]}"}
            upstream_headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
            targets: dict[str, Target] = {
                "anthropic": (claude.url, "/v1/messages", upstream_headers, "claude-bench"),
                "node-messages": (node.url, "/v1/messages", key, "claude-bench"),
                "openai": (openai.url, "/v1/chat/completions", {}, "bench-model"),
                "node-chat": (node.url, "/v1/chat/completions", key, "bench-model"),
                "node-translated": (node.url, "/v1/messages", key, "bench-model"),
            }
            times = asyncio.run(measure(targets, args.n))
        finally:
            node.proc.stop()
            claude.stop()
            openai.stop()
    report(times)


def report(times: dict[str, list[float]]) -> None:
    p50 = {name: median(t) * 1e3 for name, t in times.items()}
    messages = p50["node-messages"] - p50["anthropic"]
    chat = p50["node-chat"] - p50["openai"]
    translated = p50["node-translated"] - p50["openai"]
    out = {
        "first_byte_p50_ms": {k: round(v, 3) for k, v in p50.items()},
        "messages_delay_ms": round(messages, 3),
        "chat_delay_ms": round(chat, 3),
        "translated_delay_ms": round(translated, 3),
        "messages_over_chat": round(messages / chat, 3) if chat > 0 else None,
        "messages_delay_met": messages <= 1.0,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
