"""Child processes of the dev stack, the tests and the bench: a free port on 127.0.0.1, and a
child that dies with its parent (so no mint or node outlives a killed run)."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (another process may take it before it is used)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """In a child, before exec: Linux sends it SIGTERM when its parent dies
    (PR_SET_PDEATHSIG); elsewhere nothing happens."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
