"""The floor with a paid node's duties: how near the bare proxy any node could come.

    .venv/bin/python -m bench.floor                  # 6 rounds of 5 s, ~4 minutes
    .venv/bin/python -m bench.floor --accounts 100000

The bare proxy (bench/bare_proxy.py) is run three ways, and the node beside them, all under
the same load in alternation (servers on CPU 1; load and mock upstream on CPU 0, as in
`bench.run`):

    bare            dict lookup, forward, usage parse, in-memory debit
    +ledger         the same, paying through the node's own ledger: a reservation committed
                    before the upstream call and a settlement after (SQLite, group commit)
    +ledger+log     and the node's JSON access line per request
    node            the node itself

The ratios to `bare` bound the node's: the node does all that `+ledger+log` does and more
(pricing, rate limit, metrics, the cost in the answer), so its ratio cannot pass that one's
on this HTTP stack.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import load
from bench.nodes import BenchNode
from bench.procs import Proc, bare_proxy, mock_upstream
from bench.report import median, profile_top

LOAD_CPU, SERVER_CPU = 0, 1
VARIANTS = {"bare": [], "+ledger": ["--ledger"], "+ledger+log": ["--ledger", "--access-log"]}


def options() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--accounts", type=int, default=10, help="funded accounts (10)")
    p.add_argument("--rounds", type=int, default=6, help="alternating rounds (6)")
    p.add_argument("--seconds", type=float, default=5.0, help="seconds per throughput run (5)")
    p.add_argument("--profile", type=Path, help="then py-spy each server under load into DIR")
    return p.parse_args()


def start_bare(name: str, flags: list[str], work: Path, upstream: str, keys: Path) -> Proc:
    db = ("--ledger", str(work / f"{name}.db")) if "--ledger" in flags else ()
    rest = tuple(f for f in flags if f != "--ledger")
    return bare_proxy(work, upstream, keys, SERVER_CPU, name, db + rest)


def spy(name: str, proc: Proc, keys: Path, out_dir: Path) -> None:
    """py-spy `proc` through one load run; collapsed stacks in DIR/NAME.txt."""
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / f"{name}.txt"
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    args = [exe, "record", "-p", str(proc.pid), "-d", "8", "-r", "250", "-f", "raw", "-o", str(raw)]
    recorder = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    load.run(proc.url, keys, 32, 8, LOAD_CPU)
    recorder.wait(60)
    samples, own, _ = profile_top(raw, 8)
    top = ", ".join(f"{n} {pct:.1f}%" for n, pct in own)
    print(f"profile of {name} ({samples} samples, {raw}): {top}", flush=True)


def main() -> None:
    a = options()
    work = Path(tempfile.mkdtemp(prefix="nutgate-floor-"))
    upstream = mock_upstream(work, LOAD_CPU)
    procs = [upstream]
    try:
        upstream.wait_ready("/v1/models")
        node = BenchNode("node", work, upstream.url, None, SERVER_CPU)
        node.add_accounts(a.accounts)
        node.start()
        procs.append(node.proc)
        servers = {
            n: start_bare(n, f, work, upstream.url, node.keys_file) for n, f in VARIANTS.items()
        }
        procs += servers.values()
        for proc in servers.values():
            proc.wait_ready("/health", timeout_s=300)  # --ledger grants every key first
        servers["node"] = node.proc
        os.sched_setaffinity(0, {LOAD_CPU})
        rps: dict[str, list[float]] = {n: [] for n in servers}
        cpu: dict[str, list[float]] = {n: [] for n in servers}
        for i in range(a.rounds):
            for name, proc in servers.items():
                run = load.measured(name, proc, proc.url, node.keys_file, 32, a.seconds, LOAD_CPU)
                rps[name].append(run.rps)
                cpu[name].append(run.cpu_us)
            print(
                f"round {i + 1}/{a.rounds}: "
                + ", ".join(f"{n} {rps[n][-1]:.0f}/s {cpu[n][-1]:.0f}us" for n in servers),
                flush=True,
            )
        if a.profile:
            for name, proc in servers.items():
                spy(name, proc, node.keys_file, a.profile)
    finally:
        for proc in procs:
            proc.stop()
    print(f"\n{a.accounts} accounts, medians of {a.rounds} rounds; ratio: per round, then median")
    for name in rps:
        ratios = [x / b for x, b in zip(rps[name], rps["bare"], strict=True)]
        print(
            f"  {name:12s} {median(rps[name]):7.0f} req/s  {median(cpu[name]):5.0f} us CPU/request"
            f"  / bare {median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
        )


if __name__ == "__main__":
    main()
