"""Load: `wrk` with bench/post.lua when present, else an aiohttp client in a process of its own;
and a small sequential client for first-stream-byte times.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.procs import PY, ROOT, Proc

LUA = ROOT / "bench" / "post.lua"
BODY = {
    "model": "bench-model",
    "max_tokens": 10,
    "messages": [{"role": "user", "content": "Say hello to the benchmark, please."}],
}


@dataclass
class Result:
    requests: int
    seconds: float
    errors: int
    p50_us: float
    p99_us: float
    cpu_us: float = 0.0  # the server's CPU time per request, filled in by the caller

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def measured(
    name: str, server: Proc, url: str, keys_file: Path, conns: int, seconds: float, cpu: int | None
) -> Result:
    """`run`, with the server's CPU time per request; a run with errors stops the bench (a
    server answering errors fast is not a fast server)."""
    cpu0 = server.cpu_s()
    res = run(url, keys_file, conns, seconds, cpu)
    res.cpu_us = (server.cpu_s() - cpu0) / max(1, res.requests) * 1e6
    if res.errors:
        raise RuntimeError(f"{name}: {res.errors} errors in {res.requests} requests")
    return res


def run(
    url: str, keys_file: Path, conns: int, seconds: float, cpu: int | None, stream: bool = False
) -> Result:
    """`conns` connections for `seconds` against POST {url}/v1/chat/completions."""
    if have_wrk():
        args = [
            "wrk",
            "-t1",
            f"-c{conns}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA),
        ]
        args += [url, "--", str(keys_file)] + (["stream"] if stream else [])
    else:
        args = [PY, "-m", "bench.load", url, str(keys_file), str(conns), str(seconds)]
        args += ["stream"] if stream else []
    pre = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    out = subprocess.run(
        args,
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=pre,
        cwd=ROOT,
        timeout=seconds + 60,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("BENCH "))
    data = json.loads(line[6:])
    errors = sum(data[k] for k in data if k.endswith("errors") or k == "timeouts")
    return Result(
        data["requests"], data["duration_us"] / 1e6, errors, data["p50_us"], data["p99_us"]
    )


async def first_bytes(targets: dict[str, tuple[str, str]], n: int) -> dict[str, list[float]]:
    """Seconds from sending a streaming request to its first `data:` byte, for each target
    (name -> base URL and Bearer key), one request to each in turn."""
    body = {**BODY, "stream": True}
    times: dict[str, list[float]] = {name: [] for name in targets}
    async with aiohttp.ClientSession() as session:
        for i in range(n + 5):
            for name, (url, key) in targets.items():
                headers = {"Authorization": f"Bearer {key}"}
                t0 = time.perf_counter()
                async with session.post(
                    url + "/v1/chat/completions", json=body, headers=headers
                ) as resp:
                    assert resp.status == 200, (name, resp.status, await resp.text())
                    first = None
                    async for chunk in resp.content.iter_any():
                        if first is None and b"data:" in chunk:
                            first = time.perf_counter() - t0
                if i >= 5 and first is not None:  # the first 5 warm the connections
                    times[name].append(first)
    return times


# --- the fallback load generator (no wrk): python -m bench.load URL KEYS CONNS SECONDS [stream]


async def _client(url: str, keys: list[str], conns: int, seconds: float, stream: bool) -> str:
    lat: list[float] = []
    errors = 0
    body = {**BODY, "stream": stream}
    end = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession, i: int) -> None:
        nonlocal errors
        headers = {"Authorization": f"Bearer {keys[i % len(keys)]}"}
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            async with session.post(url + "/v1/chat/completions", json=body, headers=headers) as r:
                await r.read()
                errors += r.status != 200
            lat.append(time.perf_counter() - t0)
            i += 1

    t0 = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(worker(session, i) for i in range(conns)))
    took = time.perf_counter() - t0
    lat.sort()

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1e6 if lat else 0

    return "BENCH " + json.dumps(
        {
            "requests": len(lat),
            "duration_us": int(took * 1e6),
            "status_errors": errors,
            "timeouts": 0,
            "p50_us": pct(0.5),
            "p99_us": pct(0.99),
        }
    )


def main() -> None:
    import sys

    url, keys_file, conns, seconds = sys.argv[1:5]
    keys = Path(keys_file).read_text().split()
    stream = sys.argv[5:6] == ["stream"]
    print(asyncio.run(_client(url, keys, int(conns), float(seconds), stream)))


if __name__ == "__main__":
    main()
