"""`nutgate run` as a test starts it: a child process, its banner, its data in a directory.

stack = DevStack(tmp_path)      # free ports; data in tmp_path/data/dev, as `make run`'s
banner = stack.start()          # the banner, once printed (fails with the output if not)
stack.stop()                    # SIGINT, as Ctrl-C; it must exit 0
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from node.dev.procs import free_port

NUTGATE = Path(sys.executable).with_name("nutgate")
READY_TIMEOUT_S = 45.0


class Stack:
    """`nutgate run` as a child; its stdout collected by a thread, its stderr in a file."""

    def __init__(self, args: list[str], log: Path, cwd: Path | None = None) -> None:
        self.log = log
        with open(log, "w") as err:
            self.proc = subprocess.Popen(
                args, stdout=subprocess.PIPE, stderr=err, text=True, cwd=cwd
            )
        self.lines: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def banner(self) -> str:
        """stdout up to the banner's last line, or fail with what was printed."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not any("Ctrl-C stops" in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                out, err = "".join(self.lines), self.log.read_text()
                pytest.fail(f"nutgate run did not come up ({self.proc.returncode}):\n{out}{err}")
            time.sleep(0.1)
        return "".join(self.lines)


class DevStack:
    """`nutgate run` in `home` (data in home/data/dev, as `make run` in a checkout)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.ports = {"node": free_port(), "mint": free_port()}
        self.running: Stack | None = None
        self.starts = 0

    def start(self) -> str:
        args = [str(NUTGATE), "run", "--port", str(self.ports["node"])]
        args += ["--mint-port", str(self.ports["mint"]), "--amount", "100"]
        self.starts += 1
        self.running = Stack(args, self.home / f"stderr-{self.starts}.txt", cwd=self.home)
        return self.running.banner()

    def stop(self) -> None:
        if self.running is not None and self.running.proc.poll() is None:
            self.running.proc.send_signal(signal.SIGINT)
            assert self.running.proc.wait(20) == 0
