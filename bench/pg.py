"""Several node instances on one PostgreSQL database: throughput of two instances vs one.

    .venv/bin/python -m bench.pg                 # ~2 min: 3 alternating rounds of 8 s
    .venv/bin/python -m bench.pg --rounds 1 --seconds 3

Processes: the bench upstream, node A and node B on one new PostgreSQL database (dropped at the
end), and for reference a node on SQLite. "two" loads A and B at once, half the connections
each (as a load balancer would spread them); "one" loads A alone with all of them. Nothing is
pinned to a CPU: on a small machine the load generator, the upstream, PostgreSQL and the nodes
share the cores, which caps what a second instance can add. Prints medians; afterwards the
ledger's audit must be clean and no reservation left.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import psycopg

from bench import load
from bench.nodes import BenchNode
from bench.procs import Proc, mock_upstream
from bench.report import machine
from node.money.ledger import Ledger
from node.parts import open_database
from node.settings import load_settings

SERVER = os.environ.get("NUTGATE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")


def options() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    p.add_argument("--seconds", type=float, default=8.0, help="seconds per run")
    p.add_argument("--conns", type=int, default=32, help="connections in all")
    return p.parse_args()


def admin(sql: str) -> None:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(sql.encode())


def load_all(nodes: list[BenchNode], conns: int, seconds: float) -> float:
    """Requests per second over `nodes` loaded at once, `conns` split evenly."""
    share = max(1, conns // len(nodes))
    with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
        runs = [pool.submit(load.run, n.url, n.keys_file, share, seconds, None) for n in nodes]
        results = [r.result() for r in runs]
    errors = sum(r.errors for r in results)
    if errors:
        raise RuntimeError(f"{errors} errors")
    return sum(r.rps for r in results)


def main() -> None:
    args = options()
    name = f"nutgate_bench_{secrets.token_hex(4)}"
    url = f"{SERVER}/{name}"
    admin(f"CREATE DATABASE {name}")
    procs: list[Proc] = []
    with tempfile.TemporaryDirectory(prefix="nutgate-bench-pg-") as tmp:
        work = Path(tmp)
        try:
            upstream = mock_upstream(work)
            procs.append(upstream)
            upstream.wait_ready("/v1/models")
            a = BenchNode("pg-a", work, upstream.url, None, None, store_url=url)
            b = BenchNode("pg-b", work, upstream.url, None, None, store_url=url, keys=a.keys)
            lite = BenchNode("sqlite", work, upstream.url, None, None)
            for node in (a, b, lite):
                node.start()
                procs.append(node.proc)
            figures: dict[str, list[float]] = {"sqlite, one": [], "pg, one": [], "pg, two": []}
            for _ in range(args.rounds):
                figures["sqlite, one"].append(load_all([lite], args.conns, args.seconds))
                figures["pg, one"].append(load_all([a], args.conns, args.seconds))
                figures["pg, two"].append(load_all([a, b], args.conns, args.seconds))
            report(args, figures, url, a)
        finally:
            for proc in procs:
                proc.stop()
            admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def report(
    args: argparse.Namespace, figures: dict[str, list[float]], url: str, a: BenchNode
) -> None:
    ledger = Ledger(open_database(load_settings(a.config)))
    deadline = time.monotonic() + 30  # requests cut off at the end of a run finish first
    while ledger.open_reservations() and time.monotonic() < deadline:
        time.sleep(0.2)
    audit, open_reservations = ledger.audit(), ledger.open_reservations()
    ledger.db.close()
    med = {k: statistics.median(v) for k, v in figures.items()}
    m = machine()
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    print(
        f"nutgate bench.pg, {date}; {m['nproc']} CPU ({m['cpu']}), {m['memory']}, "
        f"python {m['python']}; load: {'wrk' if load.have_wrk() else 'aiohttp client'}, "
        f"{args.conns} connections, {args.rounds} x {args.seconds:g} s"
    )
    for k, v in figures.items():
        print(f"  {k:12s} median {med[k]:8.0f} req/s   runs: {', '.join(f'{x:.0f}' for x in v)}")
    print(f"  two / one on PostgreSQL: {med['pg, two'] / med['pg, one']:.2f}")
    print(f"  PostgreSQL / SQLite, one instance: {med['pg, one'] / med['sqlite, one']:.2f}")
    print(f"  audit after the runs: {audit or 'clean'}, open reservations: {open_reservations}")


if __name__ == "__main__":
    main()
