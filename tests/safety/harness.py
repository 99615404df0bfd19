"""The node as a real process: `python -m node.cli serve --config FILE`, killed and restarted
on the same data dir. Its log (stdout + stderr, every run appended) is kept for the secret scan.
With `crash_at`, the node is started by tests/support/crash_serve.py and kills itself at that
checkpoint of its wallet.

    proc = NodeProcess(config, tmp_path)
    await proc.start(crash_at="receive-after-swap")          # /health up, recovery finished
    proc.kill()                                              # SIGKILL, as a power cut
    proc.audit()                                             # `nutgate audit`: (rc, output)
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from node.db.postgres import PostgresStore
from node.dev.procs import free_port
from tests.support.mints import ROOT

START_TIMEOUT_S = 30.0


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def dump_toml(config: dict[str, Any]) -> str:
    """Just enough TOML for the node's configuration: tables and arrays of tables."""
    lines: list[str] = []
    for name, section in config.items():
        tables = section if isinstance(section, list) else [section]
        header = f"[[{name}]]" if isinstance(section, list) else f"[{name}]"
        for table in tables:
            lines.append(header)
            lines += [f"{k} = {toml_value(v)}" for k, v in table.items() if v is not None]
            lines.append("")
    return "\n".join(lines)


class NodeProcess:
    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = workdir / "data"
        config = {**config, "node": {**config.get("node", {}), "port": self.port}}
        config["node"]["data_dir"] = str(self.data_dir)
        self.config_path = workdir / "nutgate.toml"
        self.config_path.write_text(dump_toml(config))
        self.store_url: str = config.get("store", {}).get("url", "")
        self.log_path = workdir / "node.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def db_path(self) -> Path:
        return self.data_dir / "nutgate.sqlite3"

    async def start(
        self, env: dict[str, str] | None = None, wait: bool = True, crash_at: str | None = None
    ) -> NodeProcess:
        serve = ["serve", "--config", str(self.config_path)]
        armed = ["tests.support.crash_serve", "--crash-at", crash_at] if crash_at else ["node.cli"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", *armed, *serve],
                cwd=ROOT,
                env={**os.environ, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if wait:
            await self.wait_ready()
        return self

    async def wait_ready(self) -> None:
        """/health answers, and recovery has finished every swap and payout left pending.
        Async: a fake mint on the test's loop must go on answering the node meanwhile."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (await asyncio.to_thread(self._healthy) and self.pending_wallet_work() == 0):
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"node exited {self.proc.returncode}:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"node not ready:\n{self.log()[-3000:]}")
            await asyncio.sleep(0.1)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as resp:
                return bool(resp.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def pending_wallet_work(self) -> int:
        return int(
            self.scalar("SELECT COUNT(*) FROM wallet_swaps")
            + self.scalar("SELECT COUNT(*) FROM wallet_payouts WHERE state = 'pending'")
            + self.scalar("SELECT COUNT(*) FROM wallet_invoices WHERE state = 'minting'")
            + self.scalar("SELECT COUNT(*) FROM wallet_melts WHERE state = 'pending'")
        )

    def kill(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait(10)

    async def wait_dead(self, timeout: float = 20.0) -> int:
        """For a node that kills itself at a crash point."""
        assert self.proc is not None
        return await asyncio.to_thread(self.proc.wait, timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # --- looking inside -----------------------------------------------------------------

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        if self.store_url:  # several instances on PostgreSQL
            db = PostgresStore(self.store_url, {})
            try:
                return db.query(sql, params)
            finally:
                db.close()
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self.query(sql, params)[0][0]

    def audit(self) -> tuple[int, str]:
        done = subprocess.run(
            [sys.executable, "-m", "node.cli", "audit", "--config", str(self.config_path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.returncode, done.stdout + done.stderr

    def query_dump(self) -> list[str]:
        """Every row of every table, as text (to look for secrets stored in clear)."""
        tables = [r[0] for r in self.query("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return [repr(tuple(row)) for t in tables for row in self.query(f"SELECT * FROM {t}")]
