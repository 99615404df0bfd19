"""Child processes for the bench: each server on 127.0.0.1, its own log, pinned to a CPU if asked.

p = Proc("upstream", [PY, "-m", "bench.upstream_server", "--port", "9001"], port=9001)
p.start(); p.wait_ready("/v1/models"); p.rss_kb(); p.stop()
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from node.dev.procs import die_with_parent, free_port

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
MINT_PY = ROOT / ".venv-mint" / "bin" / "python"


class Proc:
    def __init__(
        self,
        name: str,
        args: list[str],
        port: int,
        workdir: Path,
        env: dict[str, str] | None = None,
        cpu: int | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name, self.args, self.port, self.cpu = name, args, port, cpu
        self.url = f"http://127.0.0.1:{port}"
        self.log = workdir / f"{name}.log"
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.cwd = cwd or ROOT
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        def pre() -> None:
            die_with_parent()
            if self.cpu is not None:
                os.sched_setaffinity(0, {self.cpu})

        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                self.args,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=pre,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def wait_ready(self, probe: str, timeout_s: float = 60.0) -> Proc:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.url + probe, timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready after {timeout_s}s:\n{self.tail()}")
            time.sleep(0.1)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def mock_upstream(work: Path, cpu: int | None = None) -> Proc:
    """The in-repo mock upstream (bench/upstream_server.py), started; not yet waited for."""
    port = free_port()
    return Proc(
        "upstream", [PY, "-m", "bench.upstream_server", "--port", str(port)], port, work, cpu=cpu
    ).start()


def bare_proxy(
    work: Path,
    upstream: str,
    keys: Path,
    cpu: int | None,
    name: str = "bare",
    flags: tuple[str, ...] = (),
) -> Proc:
    """bench/bare_proxy.py in front of `upstream` (the mock's URL), started; not yet waited for."""
    port = free_port()
    args = [PY, "-m", "bench.bare_proxy", "--port", str(port), "--upstream", upstream + "/v1"]
    return Proc(name, [*args, "--keys", str(keys), *flags], port, work, cpu=cpu).start()
