"""Recovery after a crash, the stores, several instances: real node processes, a real mint."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from node.db.open import open_store
from node.db.store import Store
from tests.conftest import node_config
from tests.safety.harness import NodeProcess
from tests.support.mints import ROOT, MintInfo, RefWallet
from tests.support.pg import Databases
from tests.support.servers import ThreadedServer

NO_LIMITS = {"per_minute": 0, "per_hour": 0, "per_day": 0}
TIMEOUT = aiohttp.ClientTimeout(total=60)


async def balance(node: NodeProcess, key: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as session,
        session.get(
            node.url + "/v1/wallet/balance", headers={"Authorization": f"Bearer {key}"}
        ) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


async def test_a_swap_left_by_a_dead_instance_is_finished_by_one_that_never_saw_its_keyset(
    upstream: ThreadedServer,
    mint: MintInfo,
    ref_wallet: RefWallet,
    tmp_path: Path,
    pg_databases: Databases,
) -> None:
    """Instance 1 started before any keyset was stored; instance 0 swaps and dies before its
    commit. The client's retry on instance 1 must finish the swap (not a 500 LookupError)."""
    url = pg_databases.new()
    nodes = []
    for i in range(2):
        workdir = tmp_path / f"node{i}"
        workdir.mkdir()
        sections = {"cashu": {"mints": [mint.url]}, "limits": NO_LIMITS, "store": {"url": url}}
        nodes.append(NodeProcess(node_config(upstream.url, workdir / "data", **sections), workdir))
    try:
        await nodes[1].start()
        await nodes[0].start(crash_at="receive-after-swap")
        token = await ref_wallet.token(mint.url, 50)
        with pytest.raises(aiohttp.ClientError):
            await balance(nodes[0], token)
        assert await nodes[0].wait_dead() == -signal.SIGKILL
        status, body = await balance(nodes[1], token)
        assert (status, body.get("balance_msat")) == (200, 50_000), body
    finally:
        for node in nodes:
            node.stop()


MIGRATE = """
import sys
from node.parts import open_database
from node.settings import load_settings
open_database(load_settings(sys.argv[1])).close()
print("migrated")
"""


def test_two_processes_opening_a_new_sqlite_database_at_once_both_start(
    upstream: ThreadedServer, tmp_path: Path
) -> None:
    """A node and `nutgate keys create` (or two starts) on a new file: both read "nothing
    applied", then each applies the migrations; the second must find them done, not fail."""
    proc = NodeProcess(node_config(upstream.url, tmp_path / "data"), tmp_path)
    proc.data_dir.mkdir(parents=True)
    holder = sqlite3.connect(proc.db_path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute(
        "CREATE TABLE schema_migrations (series TEXT NOT NULL, version INTEGER NOT NULL,"
        " PRIMARY KEY (series, version))"
    )
    holder.execute("BEGIN IMMEDIATE")  # both read the table, then wait for the write lock
    children = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, str(proc.config_path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    time.sleep(3)  # both have read "nothing applied" and wait on BEGIN IMMEDIATE
    holder.execute("COMMIT")
    holder.close()
    outputs = [child.communicate(timeout=30)[0].decode() for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs


TWO_TABLES = (
    "CREATE TABLE first (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);"
    "CREATE TABLE second (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);"
    "INSERT INTO first (n) VALUES (0); INSERT INTO second (n) VALUES (0);"
)
ALTER_BOTH = "ALTER TABLE second ADD COLUMN x INTEGER; ALTER TABLE first ADD COLUMN x INTEGER;"


def test_an_instance_migrating_while_another_writes_never_deadlocks_it(
    pg_databases: Databases, tmp_path: Path
) -> None:
    """A rolling upgrade: the new instance's migration and a running instance's transaction
    touch the same tables in another order. The migration must wait for the write lock, not
    take table locks under a transaction in flight (PostgreSQL would kill one: a 500)."""
    url = pg_databases.new()
    running = open_store(url, tmp_path / "unused", {"t": [TWO_TABLES]})
    upgraded: list[Store] = []
    failed: list[BaseException] = []

    def upgrade() -> None:
        try:
            upgraded.append(open_store(url, tmp_path / "unused", {"t": [TWO_TABLES, ALTER_BOTH]}))
        except BaseException as exc:  # reported by the assertion below
            failed.append(exc)

    thread = threading.Thread(target=upgrade)
    try:
        with running.transaction() as conn:
            conn.execute("UPDATE first SET n = n + 1")
            thread.start()
            time.sleep(1.5)  # the migration runs now (or waits for the write lock)
            conn.execute("UPDATE second SET n = n + 1")
        thread.join(30)
        assert failed == []
        row = running.query_one("SELECT n, x FROM first")
        assert row is not None and row[0] == 1
    finally:
        thread.join(30)
        running.close()
        for store in upgraded:
            store.close()
