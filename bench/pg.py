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

import psycopg

from bench import load
from bench.nodes import BenchNode
from bench.procs import Proc, mock_upstream
from bench.report import machine, pct
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
    of its own at a raised priority where allowed (a network takes no CPU from the hosts), its
    event loop serving every connection."""

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

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.join()

    def _main(self, report: Connection) -> None:
        with contextlib.suppress(OSError):
            os.nice(-10)
        loop = asyncio.new_event_loop()
        server = loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        report.send(server.sockets[0].getsockname()[1])
        loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(PG_HOST, PG_PORT)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    writer.close()
                    return
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                writer.write(data)

        sender = asyncio.create_task(deliver())
        try:
            while data := await reader.read(1 << 16):
                queue.put_nowait((loop.time() + self.delay_s, data))
        except OSError:
            pass
        queue.put_nowait((0.0, b""))
        await sender


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


def load_all(nodes: list[BenchNode], conns: int, seconds: float, db_url: str) -> Run:
    """Requests per second over `nodes` loaded at once, `conns` split evenly; lag samples."""
    share = max(1, conns // len(nodes))
    start, cpu = time.monotonic(), sum(n.proc.cpu_s() for n in nodes)
    stop = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(len(nodes) + 1) as pool:
        rtt = pool.submit(probe, db_url, stop) if db_url else None
        runs = [pool.submit(load.run, n.url, n.keys_file, share, seconds, None) for n in nodes]
        results = [r.result() for r in runs]
        stop.set()
        rtt_ms = rtt.result() if rtt else []
    cpu = sum(n.proc.cpu_s() for n in nodes) - cpu
    time.sleep(1.2)  # the monitors' last lines
    errors = sum(r.errors for r in results)
    if errors:
        raise RuntimeError(f"{errors} errors")
    requests = sum(r.requests for r in results)
    rps = sum(r.rps for r in results)
    lags = lag_ms(nodes, start, start + seconds)
    return Run(rps, cpu / max(1, requests) * 1e6, lags, rtt_ms)


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
                    figures[k].append(load_all(nodes, args.conns, args.seconds, db))
            report(args, figures, rtt, a)
        finally:
            for proc in procs:
                proc.stop()
            admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            proxy.stop()


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
        each = ", ".join(f"{r.rps:.0f}" for r in runs)
        worst = max(lag, default=float("nan"))
        print(
            f"  {k:12s} median {med[k]:6.0f} req/s (runs {each})  node CPU {cpu:5.0f} us/req"
            f"  loop lag p50 {pct(lag, 0.5):.1f} p99 {pct(lag, 0.99):.1f} max {worst:.1f} ms"
            f" ({len(lag)} samples)"
        )
    rtt_load = [x for k in ("pg, one", "pg, two") for r in figures[k] for x in r.rtt_ms]
    print(
        f"  round trip through the proxy under load: p50 {pct(rtt_load, 0.5):.2f}"
        f" p99 {pct(rtt_load, 0.99):.2f} ms"
    )
    print(f"  two / one on PostgreSQL: {med['pg, two'] / med['pg, one']:.2f}")
    print(f"  PostgreSQL / SQLite, one instance: {med['pg, one'] / med['sqlite, one']:.2f}")
    print(f"  audit after the runs: {audit or 'clean'}, open reservations: {open_reservations}")


if __name__ == "__main__":
    main()
