"""Many open streams at once, through the bare proxy and through the node, alternating in one run.

    python -m bench.streams [--quick] [--n 1000,5000] [--chunks 300] [--interval-ms 20]

A mock upstream (this module, --serve) answers every chat request with a stream of `--chunks`
chunks `--interval-ms` apart, then a usage chunk and [DONE]. Each chunk carries the monotonic
time it was written (`"t"`): one timer writes the same chunk to every stream of a slot, the
streams spread over 20 slots of the interval. For each N, and each round, the bare proxy
(bench/bare_proxy.py) and the node (one key per 100 streams) take N streams in turn, opened
over `--ramp` seconds by two client processes (this module, --client): one reads all but P
streams and only checks their ends, the other reads P probe streams and times every chunk.

Per target and N: CPU per relayed chunk (the process's CPU time over the chunks it relayed),
RSS per open stream (its peak RSS with all N open, less its RSS before the first phase), the
delay of each probe chunk after the upstream wrote it (p50/p99) and the added inter-chunk gap
(the client's gap less the upstream's, p99), the first-byte time (p50/p99), statuses; for the
node also the event-loop lag (node/http/lag.py: max and p99 of a 10 ms sleep's lateness) and
the ledger after each phase: every stream charged exactly once at its usage's cost, no
reservation left, the balance down by exactly the charges.

On 2 cores shared by the mock, the clients and the proxy, large N saturate the CPU: the figures
then tell what the machine allows, and say so (`cpu_busy`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from statistics import median
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from bench.procs import Proc

SLOTS = 20
START_S = 2.0  # for the client processes to start up before they open streams
PROBES = 50
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

    async def ticker(app: web.Application):  # type: ignore[no-untyped-def]
        upstream.start()
        yield

    app.cleanup_ctx.append(ticker)
    web.run_app(
        app, host="127.0.0.1", port=port, print=None, access_log=None, loop=new_event_loop()
    )


# --- the clients ---------------------------------------------------------------------------


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
        transport.write(self.request)  # type: ignore[attr-defined]

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
        await loop.create_connection(lambda c=client: c, host, int(port))  # type: ignore[misc]
    await asyncio.gather(*waits)
    return {
        "status": Counter(c.head[9:12].decode() for c in clients),
        "ended": sum(b"data: [DONE]" in c.tail for c in clients),
        "with_cost": sum(b'"cost_msat"' in c.tail for c in clients),
        "first_byte": [c.first - c.sent for c in clients if c.first],
        "delays": [d for c in clients for d in c.delays[5:]],  # past the first, ramp-time ones
        "gaps": [g for c in clients for g in c.gaps[5:]],
    }


# --- the run -------------------------------------------------------------------------------


def _pct(values: list[float], p: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * p))] * 1e3 if values else 0.0


def _lag(path: Path, since: float, until: float) -> dict[str, float]:
    late: Counter[int] = Counter()
    for line in path.read_text().splitlines() if path.exists() else []:
        entry = json.loads(line)
        if since <= entry["t"] <= until + 1.0:
            late.update({int(k): v for k, v in entry["late_tenth_ms"].items()})
    values = sorted(late.elements())
    if not values:
        return {}
    return {"max_ms": values[-1] / 10, "p99_ms": values[int(len(values) * 0.99)] / 10}


def _ledger(db: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        one = conn.execute
        return {
            "records": one("SELECT COUNT(*) FROM request_records").fetchone()[0],
            "charges": one("SELECT COUNT(*) FROM entries WHERE kind = 'charge'").fetchone()[0],
            "charged_twice": one(
                "SELECT COUNT(*) FROM (SELECT ref FROM entries WHERE kind = 'charge'"
                " GROUP BY ref HAVING COUNT(*) > 1)"
            ).fetchone()[0],
            "reservations": one("SELECT COUNT(*) FROM reservations").fetchone()[0],
            "reserved_msat": one("SELECT SUM(reserved_msat) FROM accounts").fetchone()[0],
            "balance_msat": one("SELECT SUM(balance_msat) FROM accounts").fetchone()[0],
            "charged_msat": -one(
                "SELECT COALESCE(SUM(amount_msat), 0) FROM entries WHERE kind = 'charge'"
            ).fetchone()[0],
            "distinct_costs": one(
                "SELECT COUNT(DISTINCT cost_msat) FROM request_records WHERE status = 'ok'"
            ).fetchone()[0],
            "not_ok": one("SELECT COUNT(*) FROM request_records WHERE status != 'ok'").fetchone()[
                0
            ],
        }


class Target:
    def __init__(self, name: str, proc: Proc, url: str, db: Path | None = None) -> None:
        self.name, self.proc, self.url, self.db = name, proc, url, db
        self.idle_kb = 0


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path, keys: Path, lag: Path) -> None:
        self.args, self.work, self.keys, self.lag = args, work, keys, lag

    def clients(self, target: Target, n: int) -> tuple[dict[str, Any], int, float]:
        """N streams through `target`; the peak RSS (KB) seen while they ran."""
        probes = min(PROBES, max(1, n // 4))
        from bench.procs import PY

        ramp, at = str(self.args.ramp), time.monotonic() + START_S
        base = [PY, "-m", "bench.streams", "--client", target.url, "--keys", str(self.keys)]
        base += ["--at", str(at)]
        files = [self.work / "bulk.json", self.work / "probe.json"]
        procs = [
            subprocess.Popen([*base, "--n", str(n - probes), "--ramp", ramp, "--out", files[0]]),
            subprocess.Popen(
                [*base, "--n", str(probes), "--ramp", ramp, "--probe", "--out", files[1]]
            ),
        ]
        peak = 0
        while any(p.poll() is None for p in procs):
            peak = max(peak, target.proc.rss_kb())
            time.sleep(0.2)
        outs = [json.loads(f.read_text()) for f in files]
        merged: dict[str, Any] = {"status": Counter()}
        for out in outs:
            merged["status"].update(out.pop("status"))
            for k, v in out.items():
                merged[k] = merged.get(k, 0 if isinstance(v, int) else []) + v
        return merged, peak, at

    def phase(self, target: Target, n: int) -> dict[str, Any]:
        before = _ledger(target.db) if target.db else None
        cpu0 = target.proc.cpu_s()
        out, peak_kb, t0 = self.clients(target, n)
        cpu, t1 = target.proc.cpu_s() - cpu0, time.monotonic()
        relayed = out["ended"] * (self.args.chunks + 3)  # chunks, finish, usage, [DONE]
        result: dict[str, Any] = {
            "target": target.name,
            "n": n,
            "status": dict(out["status"]),
            "ended": out["ended"],
            "cpu_s": round(cpu, 2),
            "cpu_busy": round(cpu / (t1 - t0), 2),  # of one core
            "cpu_us_per_chunk": round(cpu / max(relayed, 1) * 1e6, 2),
            "rss_kb_per_stream": round((peak_kb - target.idle_kb) / n, 1),
            "chunk_delay_ms": {"p50": _pct(out["delays"], 0.5), "p99": _pct(out["delays"], 0.99)},
            "added_gap_p99_ms": _pct(out["gaps"], 0.99),
            "first_byte_ms": {
                "p50": _pct(out["first_byte"], 0.5),
                "p99": _pct(out["first_byte"], 0.99),
            },
        }
        if target.db is not None and before is not None:
            result["loop_lag"] = _lag(self.lag, t0, t1)
            result["ledger"] = self.ledger(before, _ledger(target.db), n, out["with_cost"])
        return result

    def ledger(self, before: dict[str, int], after: dict[str, int], n: int, costs: int) -> Any:
        charges = after["charges"] - before["charges"]
        charged = after["charged_msat"] - before["charged_msat"]
        ok = (
            after["records"] - before["records"] == n == charges == costs
            and after["charged_twice"] == 0
            and after["reservations"] == 0
            and after["reserved_msat"] == 0
            and before["balance_msat"] - after["balance_msat"] == charged
            and after["distinct_costs"] == 1
            and after["not_ok"] == 0
        )
        return {"charges": charges, "charged_msat": charged, "every_stream_once": ok}


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    return value


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from bench.nodes import BenchNode
    from bench.procs import PY, Proc, bare_proxy
    from node.dev.procs import free_port

    with tempfile.TemporaryDirectory(prefix="nutgate-bench-streams-") as tmp:
        work = Path(tmp)
        port = free_port()
        interval = str(args.interval_ms / 1000)
        mock_args = ["--serve", str(port), "--chunks", str(args.chunks), "--interval", interval]
        mock = Proc("upstream", [PY, "-m", "bench.streams", *mock_args], port, work).start()
        mock.wait_ready("/v1/models")
        lag = work / "lag.jsonl"
        node = BenchNode("node", work, mock.url, None, None)
        node.add_accounts(max(1, max(args.n) // 100))
        node.proc.env["BENCH_LOOP_LAG_FILE"] = str(lag)
        node.start()
        keys = work / "keys.txt"
        keys.write_text("\n".join(node.keys) + "\n")
        bare = bare_proxy(work, mock.url, keys, None).wait_ready("/health")
        db = node.data_dir / "nutgate.sqlite3"
        targets = [Target("bare", bare, bare.url), Target("node", node.proc, node.url, db)]
        targets = [t for t in targets if t.name in args.targets]
        bench = Bench(args, work, keys, lag)
        results = []
        try:
            for t in targets:  # warm up, then the idle RSS every phase's is measured against
                bench.clients(t, 10)
                t.idle_kb = t.proc.rss_kb()
            for n in args.n:
                for r in range(args.rounds):
                    for t in targets if r % 2 == 0 else targets[::-1]:
                        results.append(_round(bench.phase(t, n)))
                        print(json.dumps(results[-1]), flush=True)
        finally:
            node.proc.stop()
            bare.stop()
            mock.stop()
    return results


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per N: the medians over rounds of node / bare CPU per chunk, and the node's figures."""
    out: dict[str, Any] = {}
    for n in sorted({r["n"] for r in results}):
        of = {t: [r for r in results if r["n"] == n and r["target"] == t] for t in ("node", "bare")}
        cpu = {t: median(r["cpu_us_per_chunk"] for r in rs) for t, rs in of.items()}
        out[str(n)] = {
            "cpu_per_chunk_node_over_bare": round(cpu["node"] / cpu["bare"], 2),
            "cpu_us_per_chunk": cpu,
            "rss_kb_per_stream": {
                t: max(r["rss_kb_per_stream"] for r in rs) for t, rs in of.items()
            },
            "chunk_delay_p99_ms": {
                t: max(r["chunk_delay_ms"]["p99"] for r in rs) for t, rs in of.items()
            },
            "added_gap_p99_ms": {t: max(r["added_gap_p99_ms"] for r in rs) for t, rs in of.items()},
            "first_byte_p50_ms": {
                t: median(r["first_byte_ms"]["p50"] for r in rs) for t, rs in of.items()
            },
            "loop_lag_max_ms": max(r["loop_lag"].get("max_ms", 0) for r in of["node"]),
            "loop_lag_p99_ms": max(r["loop_lag"].get("p99_ms", 0) for r in of["node"]),
            "non_200": sum(
                v for r in results if r["n"] == n for s, v in r["status"].items() if s != "200"
            ),
            "every_stream_charged_once": all(r["ledger"]["every_stream_once"] for r in of["node"]),
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="N = 200 and 1000, one round each")
    p.add_argument("--n", help="streams at once, comma-separated (1000,5000)")
    p.add_argument("--rounds", type=int, help="alternations of bare and node per N (2; quick 1)")
    p.add_argument("--chunks", type=int, default=300)
    p.add_argument("--interval-ms", type=float, default=20.0)
    p.add_argument("--ramp", type=float, default=3.0, help="seconds over which streams open")
    p.add_argument("--targets", default="bare,node", help="one of them alone, to profile it")
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the mock upstream's port
    p.add_argument("--interval", type=float, help=argparse.SUPPRESS)
    p.add_argument("--client", help=argparse.SUPPRESS)  # a client process: the target's URL
    p.add_argument("--keys", help=argparse.SUPPRESS)
    p.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--at", type=float, help=argparse.SUPPRESS)  # when the clients begin
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.chunks, args.interval)
        return
    if args.client:
        from node.cli import new_event_loop

        keys = Path(args.keys).read_text().split()
        loop = new_event_loop()
        n = int(args.n)
        at = args.at
        out = loop.run_until_complete(_clients(args.client, keys, n, args.ramp, args.probe, at))
        args.out.write_text(json.dumps(out))
        return
    args.n = [int(x) for x in (args.n or ("200,1000" if args.quick else "1000,5000")).split(",")]
    args.rounds = args.rounds or (1 if args.quick else 2)
    args.targets = args.targets.split(",")
    results = run(args)
    print(json.dumps({"summary": summary(results)}, indent=2))


if __name__ == "__main__":
    main()
