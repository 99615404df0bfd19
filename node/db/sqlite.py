"""The SQLite store: one database file, one connection, serialized writes (see store.py).

WAL with `synchronous=NORMAL`: a committed transaction survives a crash of the process (the
node's failure model); `durability = "full"` also survives a power cut, at an fsync per commit.

Checkpoints (copying the WAL into the database file, with its fsyncs) run on a thread of their
own, every CHECKPOINT_EVERY_S, never blocking a writer (PASSIVE). SQLite's own automatic
checkpoint would run them in the commit that crosses 1 000 pages, on the event loop. Under
steady writes a passive checkpoint never finds the WAL idle, so the WAL cannot start over by
itself: SQLite's automatic checkpoint stays, at AUTOCHECKPOINT_PAGES, and the commit that
crosses that bound copies only what the thread has not (a quarter second of writes at most),
after which the WAL starts over from its beginning (bench/RESULTS-postgres.md, SQLite part).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from pathlib import Path

from node.db.store import Migrations, Store

CHECKPOINT_EVERY_S = 0.25
AUTOCHECKPOINT_PAGES = 8_000  # ~32 MB of WAL, then it starts over

log = logging.getLogger("nutgate.store")


class SqliteStore(Store):
    """SQLite: one connection, serialized writes."""

    kind = "sqlite"

    def __init__(self, path: Path | str, migrations: Migrations, *, durability: str = "normal"):
        super().__init__()
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            _private(Path(self.path))
        self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.execute("PRAGMA busy_timeout=10000")
        self.conn.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
        self._driver = self._sql = self.conn
        self._migrate(migrations)
        self.checkpoints = None if self.path == ":memory:" else Checkpoints(self.path)

    def close(self) -> None:
        if self.checkpoints is not None:
            self.checkpoints.stop()
        super().close()

    def _begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def instance_alive(self, instance: str) -> bool:
        return instance == self.instance  # one node per SQLite file: any other one has died

    def try_singleton(self, name: str) -> bool:
        return True

    def _migrate(self, migrations: Migrations) -> None:
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " series TEXT NOT NULL, version INTEGER NOT NULL,"
            " PRIMARY KEY (series, version))"
        )
        for series, scripts in migrations.items():
            done = {
                row[0]
                for row in self.conn.execute(
                    "SELECT version FROM schema_migrations WHERE series = ?", (series,)
                )
            }
            for version, script in enumerate(scripts, start=1):
                if version not in done:
                    self._apply(series, version, script)

    def _apply(self, series: str, version: int, script: str) -> None:
        # executescript commits anything pending first, then runs the script as written. The
        # version is recorded first, under the write lock: a process that read "not applied"
        # while another was applying it fails on that key, before any DDL, and finds it done.
        try:
            self.conn.executescript(
                "BEGIN IMMEDIATE;\n"
                f"INSERT INTO schema_migrations (series, version) VALUES ('{series}', {version});"
                f"\n{script}\n;COMMIT;"
            )
        except sqlite3.Error:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if not self.conn.execute(
                "SELECT 1 FROM schema_migrations WHERE series = ? AND version = ?",
                (series, version),
            ).fetchone():
                raise


class Checkpoints:
    """A thread with its own connection that checkpoints the WAL now and then (PASSIVE: as far
    as readers allow, without waiting for anyone); `done` counts the checkpoints that copied
    pages."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.done = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nutgate-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            last = (0, 0)
            while not self._stop.wait(CHECKPOINT_EVERY_S):
                try:
                    _, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # e.g. busy: the next round tries again
                    log.warning("WAL checkpoint failed: %s", exc)
                    continue
                if copied > 0 and (frames, copied) != last:
                    self.done += 1
                last = (frames, copied)
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _private(path: Path) -> None:
    """The database holds the proofs: 0600, like the keys (SQLite gives the -wal and -shm files
    it creates the database's mode). An older, wider file is narrowed when this process owns
    it, and so are the -wal and -shm an older install's crash left (SQLite reuses them).
    An existing file is never opened here: closing any descriptor of a file drops every
    POSIX lock this process holds on it, the locks of a connection already open included."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(OSError):  # a missing file, or one this process does not own
            if file.stat().st_mode & 0o077:
                os.chmod(file, 0o600)
