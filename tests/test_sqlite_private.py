"""The SQLite database holds the node's proofs: it and its WAL files are the owner's alone, an
older, wider install's included (a crash leaves its -wal behind, and SQLite reuses it)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from node.db.sqlite import SqliteStore

SCHEMA = {"t": ["CREATE TABLE t (x INTEGER);"]}


def test_a_new_database_and_its_wal_files_are_0600(tmp_path: Path) -> None:
    path = tmp_path / "data" / "nutgate.sqlite3"
    store = SqliteStore(path, SCHEMA)
    with store.transaction() as conn:
        conn.execute("INSERT INTO t (x) VALUES (1)")
    for file in [path, *tmp_path.glob("data/nutgate.sqlite3-*")]:
        assert file.stat().st_mode & 0o777 == 0o600, file.name
    store.close()


def test_an_older_wider_database_and_its_left_over_wal_are_narrowed(tmp_path: Path) -> None:
    running = tmp_path / "running.sqlite3"
    conn = sqlite3.connect(running, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE proofs (x INTEGER)")
    conn.execute("INSERT INTO proofs (x) VALUES (1)")  # in the -wal until a checkpoint
    path = tmp_path / "nutgate.sqlite3"  # the files a crash leaves, as an older install made them
    for name in ("", "-wal"):
        shutil.copyfile(f"{running}{name}", f"{path}{name}")
        Path(f"{path}{name}").chmod(0o644)
    conn.close()
    assert Path(f"{path}-wal").stat().st_size > 0
    store = SqliteStore(path, SCHEMA)  # open: a clean close removes the -wal and -shm
    for name in ("", "-wal", "-shm"):
        assert Path(f"{path}{name}").stat().st_mode & 0o777 == 0o600, name
    store.close()
