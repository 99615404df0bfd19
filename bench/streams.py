"""Many open streams at once, through the bare proxy and through the node, alternating in one run.

    python -m bench.streams [--quick] [--n 1000,5000] [--chunks 300] [--interval-ms 20]

A mock upstream (bench/stream_ends.py) answers every chat request with a stream of `--chunks`
chunks `--interval-ms` apart, then a usage chunk and [DONE]. Each chunk carries the monotonic
time it was written (`"t"`): one timer writes the same chunk to every stream of a slot, the
streams spread over 20 slots of the interval. For each N, and each round, the bare proxy
(bench/bare_proxy.py) and the node (one key per 100 streams) take N streams in turn, opened
over `--ramp` seconds by two client processes (bench/stream_ends.py): one reads all but P
streams and only checks their ends, the other reads P probe streams and times every chunk.

Per target and N: CPU per relayed chunk (the process's CPU time over the chunks it relayed),
RSS per open stream (its peak RSS with all N open, less its RSS before the first phase), the
delay of each probe chunk after the upstream wrote it (p50/p99) and the added inter-chunk gap
(the client's gap less the upstream's, p50/p99), the first-byte time (p50/p99), statuses; for the
node also the event-loop lag (node/http/lag.py: max and p99 of a 10 ms sleep's lateness) and
the ledger after each phase: every stream charged exactly once at its usage's cost, no
reservation left, the balance down by exactly the charges.

On 2 cores shared by the mock, the clients and the proxy, large N saturate the CPU: the figures
then tell what the machine allows, and say so: `cpu_busy` (the target's share of one core)
and `load_1m` (the machine's load average, other work included) with each phase.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from statistics import median
from typing import Any

from bench.nodes import BenchNode
from bench.procs import PY, Proc, bare_proxy
from node.dev.procs import free_port

START_S = 2.0  # for the client processes to start up before they open streams
PROBES = 50


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
        ramp, at = str(self.args.ramp), time.monotonic() + START_S
        base = [PY, "-m", "bench.stream_ends", "--client", target.url, "--keys", str(self.keys)]
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
            "added_gap_ms": {"p50": _pct(out["gaps"], 0.5), "p99": _pct(out["gaps"], 0.99)},
            "load_1m": float(Path("/proc/loadavg").read_text().split()[0]),  # the whole machine
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
    with tempfile.TemporaryDirectory(prefix="nutgate-bench-streams-") as tmp:
        work = Path(tmp)
        port = free_port()
        interval = str(args.interval_ms / 1000)
        mock_args = ["--serve", str(port), "--chunks", str(args.chunks), "--interval", interval]
        mock = Proc("upstream", [PY, "-m", "bench.stream_ends", *mock_args], port, work).start()
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
    """Per N: node / bare CPU per chunk (medians over rounds), and each figure's worst round."""
    out: dict[str, Any] = {}
    for n in sorted({r["n"] for r in results}):
        of = {t: [r for r in results if r["n"] == n and r["target"] == t] for t in ("node", "bare")}
        cpu = {t: median(r["cpu_us_per_chunk"] for r in rs) for t, rs in of.items() if rs}

        def worst(*path: str, of: dict[str, list[dict[str, Any]]] = of) -> dict[str, float]:
            return {t: max(_at(r, path) for r in rs) for t, rs in of.items() if rs}

        node = of["node"]
        out[str(n)] = {
            "cpu_per_chunk_node_over_bare": round(cpu["node"] / cpu["bare"], 2)
            if len(cpu) == 2
            else None,
            "cpu_us_per_chunk": cpu,
            "rss_kb_per_stream": worst("rss_kb_per_stream"),
            "chunk_delay_p50_ms": worst("chunk_delay_ms", "p50"),
            "chunk_delay_p99_ms": worst("chunk_delay_ms", "p99"),
            "added_gap_p50_ms": worst("added_gap_ms", "p50"),
            "added_gap_p99_ms": worst("added_gap_ms", "p99"),
            "first_byte_p50_ms": worst("first_byte_ms", "p50"),
            "first_byte_p99_ms": worst("first_byte_ms", "p99"),
            "loop_lag_max_ms": max((r["loop_lag"].get("max_ms", 0) for r in node), default=None),
            "loop_lag_p99_ms": max((r["loop_lag"].get("p99_ms", 0) for r in node), default=None),
            "non_200": sum(
                v for rs in of.values() for r in rs for s, v in r["status"].items() if s != "200"
            ),
            "every_stream_charged_once": all(r["ledger"]["every_stream_once"] for r in node),
            "load_1m": worst("load_1m"),
        }
    return out


def _at(result: dict[str, Any], path: tuple[str, ...]) -> float:
    value: Any = result
    for key in path:
        value = value[key]
    return float(value)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="N = 200 and 1000, one round each")
    p.add_argument("--n", help="streams at once, comma-separated (1000,5000)")
    p.add_argument("--rounds", type=int, help="alternations of bare and node per N (2; quick 1)")
    p.add_argument("--chunks", type=int, default=300)
    p.add_argument("--interval-ms", type=float, default=20.0)
    p.add_argument("--ramp", type=float, default=3.0, help="seconds over which streams open")
    p.add_argument("--targets", default="bare,node", help="one of them alone, to profile it")
    args = p.parse_args()
    args.n = [int(x) for x in (args.n or ("200,1000" if args.quick else "1000,5000")).split(",")]
    args.rounds = args.rounds or (1 if args.quick else 2)
    args.targets = args.targets.split(",")
    results = run(args)
    print(json.dumps({"summary": summary(results)}, indent=2))


if __name__ == "__main__":
    main()
