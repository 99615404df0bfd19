"""A/B: this checkout's node against another checkout's, under the same load, alternating.

    git worktree add /tmp/before main~1            # or any checkout with this bench/
    .venv/bin/python -m bench.ab /tmp/before --accounts 100000 --rounds 8
    .venv/bin/python -m bench.ab /tmp/before --first-bytes 1000

Each node runs its own checkout's code and seeds its own database with it (so a schema or a
pragma that differs is part of what is compared). Throughput (wrk, 32 connections) and c=1
latency are measured round after round, the two nodes in turn, with the nodes on CPU 1 and the
load and the mock upstream on CPU 0, as in `bench.run`; `--first-bytes` adds streamed requests
sent to each node in turn, all on one CPU. On a noisy machine only such interleaved medians
tell a change of a few percent from the drift between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
from pathlib import Path

from bench import load
from bench.nodes import BenchNode
from bench.procs import PY, ROOT, mock_upstream
from bench.report import median

LOAD_CPU, SERVER_CPU = 0, 1
Figures = dict[str, dict[str, list[float]]]  # node -> figure -> one value per round

SEED = """
import sys
from pathlib import Path
from bench.nodes import seed
keys, _ = seed(Path(sys.argv[1]), int(sys.argv[2]))
Path(sys.argv[3]).write_text("\\n".join(keys))
"""


def options() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("other", type=Path, help="the other checkout (the baseline)")
    p.add_argument("--accounts", type=int, default=10, help="funded accounts per node (10)")
    p.add_argument("--rounds", type=int, default=8, help="alternating rounds (8)")
    p.add_argument("--seconds", type=float, default=5.0, help="seconds per throughput run (5)")
    p.add_argument("--first-bytes", type=int, default=0, help="streamed requests per node (0)")
    p.add_argument(
        "--node-cpus",
        default=str(SERVER_CPU),
        help=f"CPUs the nodes may run on, e.g. 0,1: threads of theirs may then use the load's"
        f" CPU when it idles ({SERVER_CPU})",
    )
    return p.parse_args()


def start_node(name: str, checkout: Path, work: Path, upstream: str, accounts: int) -> BenchNode:
    node = BenchNode(name, work, upstream, None, SERVER_CPU)
    node.proc.env["PYTHONPATH"] = str(checkout)
    node.proc.cwd = checkout
    keys = work / f"{name}-keys.txt"
    args = [PY, "-c", SEED, str(node.config), str(accounts - len(node.keys)), str(keys)]
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    subprocess.run(args, check=True, cwd=checkout, env=env)
    node.keys += keys.read_text().split()
    return node.start()


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of `pid` (a process's affinity is its threads' own, inherited at start)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), cpus)


def rounds(nodes: dict[str, BenchNode], args: argparse.Namespace) -> Figures:
    figures: Figures = {n: {"rps": [], "cpu": [], "p50": []} for n in nodes}
    cpus = {int(c) for c in args.node_cpus.split(",")}
    for i in range(args.rounds):
        for name, node in nodes.items():
            pin(node.proc.pid, cpus)
            url, keys = node.url, node.keys_file
            run = load.measured(name, node.proc, url, keys, 32, args.seconds, LOAD_CPU)
            figures[name]["rps"].append(run.rps)
            figures[name]["cpu"].append(run.cpu_us)
            figures[name]["p50"].append(load.run(url, keys, 1, 2, LOAD_CPU).p50_us)
        line = ", ".join(
            f"{n} {f['rps'][-1]:.0f}/s {f['cpu'][-1]:.0f}us" for n, f in figures.items()
        )
        print(f"round {i + 1}/{args.rounds}: {line}", flush=True)
    return figures


def main() -> None:
    args = options()
    work = Path(tempfile.mkdtemp(prefix="nutgate-ab-"))
    upstream = mock_upstream(work, LOAD_CPU)
    upstream.wait_ready("/v1/models")
    nodes: dict[str, BenchNode] = {}
    try:
        for name, checkout in (("this", ROOT), ("other", args.other.resolve())):
            nodes[name] = start_node(name, checkout, work, upstream.url, args.accounts)
        os.sched_setaffinity(0, {LOAD_CPU})
        figures = rounds(nodes, args) if args.rounds else {}
        if args.first_bytes:
            for node in nodes.values():
                os.sched_setaffinity(node.proc.pid, {LOAD_CPU})
            targets = {name: (node.url, node.keys[0]) for name, node in nodes.items()}
            for name, times in asyncio.run(load.first_bytes(targets, args.first_bytes)).items():
                figures.setdefault(name, {})["first_byte_ms"] = [t * 1e3 for t in times]
    finally:
        for node in nodes.values():
            node.proc.stop()
        upstream.stop()
    print(f"\nthis: {ROOT}\nother: {args.other}  ({args.accounts} accounts, medians)")
    for key in ("rps", "cpu", "p50", "first_byte_ms"):
        if key in figures.get("this", {}):
            a, b = median(figures["this"][key]), median(figures["other"][key])
            print(f"  {key:14s} this {a:10.2f}   other {b:10.2f}   this/other {a / b:.3f}")


if __name__ == "__main__":
    main()
