"""The node with a crash point armed, for the recovery tests only (production never runs it):

    python -m tests.support.crash_serve --crash-at receive-after-swap serve --config FILE

The wallet calls its checkpoint by name between a mint's answer and its own commit
(`receive-after-swap`, `send-after-swap`), and the request records between a settlement's
record and its commit (`settle-recorded`); the one armed here SIGKILLs the process there, as
a power cut would. The production wallet's checkpoint does nothing, and reads no variable.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from node import cli
from node.settings import ConfigError, load_settings
from wallet import Checkpoint


def kill_at(name: str) -> Checkpoint:
    """A checkpoint that kills this process at the one named `name`."""

    def checkpoint(reached: str) -> None:
        if reached == name:
            os.kill(os.getpid(), signal.SIGKILL)

    return checkpoint


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.crash_serve")
    parser.add_argument("--crash-at", required=True, help="the wallet's checkpoint to die at")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--config", "-c", required=True, help="TOML configuration file")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(Path(args.config))
    except ConfigError as exc:
        sys.exit(f"nutgate: {exc}")
    cli.serve(settings, checkpoint=kill_at(args.crash_at))


if __name__ == "__main__":
    main()
