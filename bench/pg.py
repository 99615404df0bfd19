"""Several node instances on one PostgreSQL database across a network: one and two instances
against one SQLite instance, with the event loop's lag under that load.

    .venv/bin/python -m bench.pg                 # ~2 min: 3 alternating rounds of 8 s
    .venv/bin/python -m bench.pg --rounds 1 --seconds 3 --delay-ms 0
    .venv/bin/python -m bench.pg --wal            # SQLite: commit stalls from WAL checkpoints

Processes: the bench upstream, node A and node B on one new PostgreSQL database (dropped at the
end), and for reference a node on SQLite. The nodes reach PostgreSQL through a TCP proxy in
a process of its own that holds every packet `--delay-ms` (1 ms) in each direction, as a database on
another host would; the round trip it adds is measured and printed. "two" loads A and B at
once, half the connections each (as a load balancer would spread them); "one" loads A alone
with all of them. Each node runs the loop-lag monitor (node/http/lag.py); a run's lag is
the p99 and the maximum of its samples. Nothing is pinned to a CPU: on a small machine the load
generator, the upstream, the proxy, PostgreSQL and the nodes share the cores. Prints medians;
afterwards the ledger's audit must be clean and no reservation left.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import contextlib
import datetime
import json
import multiprocessing
import os
import secrets
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import cast

import psycopg

from bench import load
from bench.nodes import BenchNode
from bench.procs import Proc, mock_upstream
from bench.report import machine, pct
from node.cli import new_event_loop
from node.db.sqlite import SqliteStore
from node.http.lag import ENV as LOOPLAG
from node.money.ledger import Ledger
from node.parts import open_database
from node.settings import load_settings

SERVER = os.environ.get("NUTGATE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
PG_HOST, PG_PORT = "127.0.0.1", 5432


def options() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    p.add_argument("--seconds", type=float, default=8.0, help="seconds per run")
    p.add_argument("--conns", type=int, default=32, help="connections in all")
    p.add_argument("--delay-ms", type=float, default=1.0, help="added each way to PostgreSQL")
    p.add_argument(
        "--wal", action="store_true", help="only SQLite's commit stalls from checkpoints"
    )
    return p.parse_args()


class DelayProxy:
    """A TCP proxy to PostgreSQL that delivers each chunk `delay_s` after it arrived, in order,
    in both directions: a network's latency without its bandwidth limit. It runs in a process
    of its own at a raised priority where allowed, with protocol callbacks and one timer per
    direction rather than streams and tasks: a network takes no CPU from the hosts, so the
    proxy should take as little of the machine's as it can. `cpu_s()` is its CPU time."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.port = 0
        self._proc: multiprocessing.process.BaseProcess | None = None

    def start(self) -> DelayProxy:
        ctx = multiprocessing.get_context("fork")
        ours, theirs = ctx.Pipe()
        self._proc = ctx.Process(target=self._main, args=(theirs,), daemon=True)
        self._proc.start()
        self.port = ours.recv()
        return self

    def cpu_s(self) -> float:
        assert self._proc is not None and self._proc.pid is not None
        fields = Path(f"/proc/{self._proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.join()

    def _main(self, report: Connection) -> None:
        with contextlib.suppress(OSError):
            os.nice(-10)
        loop = new_event_loop()
        server = loop.run_until_complete(
            loop.create_server(lambda: _Client(self.delay_s), "127.0.0.1", 0)
        )
        report.send(server.sockets[0].getsockname()[1])
        loop.run_forever()


class _Delayed(asyncio.Protocol):
    """One direction's receiving end: what arrives is written to `peer` `delay_s` later, in
    order (one timer for the queue's head, not one per chunk)."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.peer: asyncio.Transport | None = None
        self.transport: asyncio.Transport | None = None
        self._queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self._later(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._later(b"")  # the close, after what came before it

    def _later(self, data: bytes) -> None:
        due = self._loop.time() + self.delay_s
        self._queue.append((due, data))
        if self._timer is None:
            self._timer = self._loop.call_at(due, self._deliver)

    def _deliver(self) -> None:
        self._timer = None
        now = self._loop.time() + 0.0001
        while self.peer is not None and self._queue and self._queue[0][0] <= now:
            _, data = self._queue.popleft()
            if data:
                self.peer.write(data)
            else:
                self.peer.close()
        if self.peer is not None and self._queue:  # else the connect delivers them
            self._timer = self._loop.call_at(self._queue[0][0], self._deliver)


class _Client(_Delayed):
    """The node's side: connects to PostgreSQL; bytes that arrive before that are queued."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._loop.create_task(self._connect())

    async def _connect(self) -> None:
        assert self.transport is not None
        try:
            upstream, server = await self._loop.create_connection(
                lambda: _Delayed(self.delay_s), PG_HOST, PG_PORT
            )
        except OSError:
            self.transport.close()
            return
        server.peer, self.peer = self.transport, upstream
        if self._timer is None:
            self._deliver()


def round_trip_ms(url: str, n: int = 300) -> float:
    """The median time of `SELECT 1` over `url`, in ms."""
    with psycopg.connect(url, autocommit=True) as conn:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def admin(sql: str) -> None:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(sql.encode())


def lag_ms(nodes: list[BenchNode], start: float, end: float) -> list[float]:
    """The loop-lag samples (ms, to a tenth) the nodes wrote between `start` and `end`
    (time.monotonic(), one clock for every process of the machine)."""
    samples: list[float] = []
    for node in nodes:
        path = node.data_dir / "looplag.jsonl"
        if path.exists():
            for line in path.read_text().splitlines():
                entry = json.loads(line)
                if start + 1.0 <= entry["t"] <= end:  # the first second ramps up
                    for tenths, count in entry["late_tenth_ms"].items():
                        samples += [int(tenths) / 10] * count
    return samples


@dataclass
class Run:
    rps: float
    cpu_us: float  # the nodes' CPU time per request
    lag_ms: list[float]
    rtt_ms: list[float]  # SELECT 1 through the proxy during the run (PostgreSQL runs only)
    proxy_us: float  # the proxy's CPU time per request


def probe(url: str, stop: threading.Event) -> list[float]:
    """Round trips of `SELECT 1` over `url` every 20 ms until `stop`, in ms: the network the
    nodes saw under load (the proxy shares the CPUs with everything else)."""
    times = []
    with psycopg.connect(url, autocommit=True) as conn:
        while not stop.wait(0.02):
            t0 = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            times.append((time.perf_counter() - t0) * 1000)
    return times


def load_all(
    nodes: list[BenchNode], conns: int, seconds: float, db_url: str, proxy: DelayProxy
) -> Run:
    """Requests per second over `nodes` loaded at once, `conns` split evenly; lag samples."""
    share = max(1, conns // len(nodes))
    start, cpu = time.monotonic(), sum(n.proc.cpu_s() for n in nodes)
    proxy_cpu = proxy.cpu_s()
    stop = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(len(nodes) + 1) as pool:
        rtt = pool.submit(probe, db_url, stop) if db_url else None
        runs = [pool.submit(load.run, n.url, n.keys_file, share, seconds, None) for n in nodes]
        results = [r.result() for r in runs]
        stop.set()
        rtt_ms = rtt.result() if rtt else []
    cpu = sum(n.proc.cpu_s() for n in nodes) - cpu
    proxy_cpu = proxy.cpu_s() - proxy_cpu
    time.sleep(1.2)  # the monitors' last lines
    errors = sum(r.errors for r in results)
    if errors:
        raise RuntimeError(f"{errors} errors")
    requests = sum(r.requests for r in results)
    rps = sum(r.rps for r in results)
    lags = lag_ms(nodes, start, start + seconds)
    per_request = 1e6 / max(1, requests)
    return Run(rps, cpu * per_request, lags, rtt_ms, proxy_cpu * per_request)


def commit_times(db: SqliteStore, seconds: float) -> tuple[list[float], int]:
    """Small commits (four rows each, 0.5 ms apart) for `seconds`: each one's ms, and the WAL's
    largest size in KB."""
    times, wal, end = [], 0, time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        with db.transaction() as conn:
            conn.executemany("INSERT INTO t (k, v) VALUES (?, ?)", [(t0, os.urandom(200))] * 4)
        times.append((time.perf_counter() - t0) * 1000)
        wal = max(wal, Path(f"{db.path}-wal").stat().st_size // 1024)
        time.sleep(0.0005)
    return times, wal


def wal_stalls(work: Path, seconds: float) -> None:
    """SQLite's checkpoints in the commit that crosses 1 000 pages (its default, as before)
    against the store's checkpoint thread: the commits' p99.9 and slowest."""
    schema = {"t": ["CREATE TABLE t (id INTEGER PRIMARY KEY, k REAL, v BLOB)"]}
    own = SqliteStore(work / "own.sqlite3", schema)
    if own.checkpoints is not None:  # as before: no thread, SQLite's 1 000-page checkpoints
        own.checkpoints.stop()
        own.checkpoints = None
    own.conn.execute("PRAGMA wal_autocheckpoint=1000")
    store = SqliteStore(work / "store.sqlite3", schema)
    for name, db in (("in the commit (SQLite's default)", own), ("checkpoint thread", store)):
        times, wal = commit_times(db, seconds)
        print(
            f"  SQLite commits, checkpoints {name}: {len(times)} commits, p99.9"
            f" {pct(times, 0.999):.2f} ms, slowest {max(times):.1f} ms, WAL up to {wal} KB"
        )
        db.close()


def main() -> None:
    args = options()
    if args.wal:
        with tempfile.TemporaryDirectory(prefix="nutgate-bench-wal-") as tmp:
            wal_stalls(Path(tmp), args.seconds)
        return
    name = f"nutgate_bench_{secrets.token_hex(4)}"
    proxy = DelayProxy(args.delay_ms / 1000).start()
    server = f"postgresql://postgres@127.0.0.1:{proxy.port}"
    url = f"{server}/{name}"
    admin(f"CREATE DATABASE {name}")
    procs: list[Proc] = []
    with tempfile.TemporaryDirectory(prefix="nutgate-bench-pg-") as tmp:
        work = Path(tmp)
        try:
            rtt = (round_trip_ms(f"{SERVER}/{name}"), round_trip_ms(url))
            upstream = mock_upstream(work)
            procs.append(upstream)
            upstream.wait_ready("/v1/models")
            a = BenchNode("pg-a", work, upstream.url, None, None, store_url=url)
            b = BenchNode("pg-b", work, upstream.url, None, None, store_url=url, keys=a.keys)
            lite = BenchNode("sqlite", work, upstream.url, None, None)
            for node in (a, b, lite):
                node.proc.env[LOOPLAG] = str(node.data_dir / "looplag.jsonl")
                node.start()
                procs.append(node.proc)
            runs = {"sqlite, one": [lite], "pg, one": [a], "pg, two": [a, b]}
            figures: dict[str, list[Run]] = {k: [] for k in runs}
            for _ in range(args.rounds):
                for k, nodes in runs.items():
                    db = url if nodes[0] is not lite else ""
                    figures[k].append(load_all(nodes, args.conns, args.seconds, db, proxy))
            report(args, figures, rtt, a)
        finally:
            for proc in procs:
                proc.stop()
            admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            proxy.stop()


def ratios(figures: dict[str, list[Run]], top: str, bottom: str) -> str:
    """The ratio of the medians, and its range over the rounds (each round's pair ran in turn,
    under the same load)."""
    pairs = [a.rps / b.rps for a, b in zip(figures[top], figures[bottom], strict=True)]
    median = statistics.median(r.rps for r in figures[top])
    median /= statistics.median(r.rps for r in figures[bottom])
    return f"{median:.2f} (rounds {min(pairs):.2f}-{max(pairs):.2f})"


def report(
    args: argparse.Namespace, figures: dict[str, list[Run]], rtt: tuple[float, float], a: BenchNode
) -> None:
    ledger = Ledger(open_database(load_settings(a.config)))
    deadline = time.monotonic() + 30  # requests cut off at the end of a run finish first
    while ledger.open_reservations() and time.monotonic() < deadline:
        time.sleep(0.2)
    audit, open_reservations = ledger.audit(), ledger.open_reservations()
    ledger.db.close()
    med = {k: statistics.median(r.rps for r in v) for k, v in figures.items()}
    m = machine()
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    print(
        f"nutgate bench.pg, {date}; {m['nproc']} CPU ({m['cpu']}), {m['memory']}, "
        f"python {m['python']}; load: {'wrk' if load.have_wrk() else 'aiohttp client'}, "
        f"{args.conns} connections, {args.rounds} x {args.seconds:g} s; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"  PostgreSQL round trip (SELECT 1, median): {rtt[0]:.2f} ms direct, {rtt[1]:.2f} ms "
        f"through the proxy ({args.delay_ms:g} ms each way asked)"
    )
    for k, runs in figures.items():
        lag = [x for r in runs for x in r.lag_ms]
        cpu = statistics.median(r.cpu_us for r in runs)
        proxy = statistics.median(r.proxy_us for r in runs)
        each = ", ".join(f"{r.rps:.0f}" for r in runs)
        worst = max(lag, default=float("nan"))
        print(
            f"  {k:12s} median {med[k]:6.0f} req/s (runs {each})  node CPU {cpu:5.0f} us/req"
            f" (proxy {proxy:3.0f})"
            f"  loop lag p50 {pct(lag, 0.5):.1f} p99 {pct(lag, 0.99):.1f} max {worst:.1f} ms"
            f" ({len(lag)} samples)"
        )
    rtt_load = [x for k in ("pg, one", "pg, two") for r in figures[k] for x in r.rtt_ms]
    print(
        f"  round trip through the proxy under load: p50 {pct(rtt_load, 0.5):.2f}"
        f" p99 {pct(rtt_load, 0.99):.2f} ms"
    )
    print(f"  two / one on PostgreSQL: {ratios(figures, 'pg, two', 'pg, one')}")
    print(f"  PostgreSQL / SQLite, one instance: {ratios(figures, 'pg, one', 'sqlite, one')}")
    print(f"  audit after the runs: {audit or 'clean'}, open reservations: {open_reservations}")


if __name__ == "__main__":
    main()
