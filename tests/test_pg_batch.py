"""PostgreSQL's group commit batches sent as one query from the event loop (node.db.pg_batch):
values arrive exactly as given whatever they hold, a write that must read as it runs goes to
a writer thread, a failed batch fails only its bad write, and a transaction on the loop while a
batch is out waits for it rather than deadlocking."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from node.db.open import open_store
from node.db.store import IntegrityError, Store, Then
from node.money.ledger import MIGRATIONS, Ledger, hash_key
from tests.support.pg import Databases, Opener
from wallet.store import Connection


class Echo:
    """A write that sends `value` and reads it back after the batch; where each run was."""

    def __init__(self, value: Any, sql: str = "SELECT CAST(:v AS TEXT)") -> None:
        self.value, self.sql = value, sql
        self.threads: list[int] = []

    def __call__(self, conn: Connection) -> Any:  # a Then: run() gives what it reads
        self.threads.append(threading.get_ident())
        cursor = conn.execute(self.sql, {"v": self.value})
        return Then(lambda _: cursor.fetchone()[0], writes=False)


TEXTS = [
    "it's",
    "back\\slash \\' \\x41",
    "$1 %s %(v)s :v ? %% $$",
    "'; DROP TABLE accounts; --",
    "E'\\x41' U&'\\0041'",
    "ünïcödé ✓ 😀 \u2028",
    "",
    "line\nbreak\ttab\r",
    "'" * 50,
]


async def test_values_arrive_exactly_in_one_batch_from_the_loop(pg: Opener) -> None:
    db = pg()
    ledger = Ledger(db)
    texts = [Echo(text) for text in TEXTS]
    numbers = [Echo(n, "SELECT CAST(:v AS BIGINT)") for n in (0, -1, 2**63 - 1, -(2**63))]
    nothing = Echo(None)
    echoes = [*texts, *numbers, nothing]
    got = await asyncio.gather(*(ledger.commits.run(echo) for echo in echoes))
    assert got == [*TEXTS, 0, -1, 2**63 - 1, -(2**63), None]
    loop_thread = threading.get_ident()
    assert all(echo.threads == [loop_thread] for echo in echoes)  # sent, not on a thread
    assert db.query_one("SELECT count(*) FROM accounts") is not None


async def test_a_write_that_reads_as_it_runs_goes_to_a_writer_thread(pg: Opener) -> None:
    ledger = Ledger(pg())
    threads: list[int] = []

    def reads(conn: Connection) -> int:
        threads.append(threading.get_ident())
        return int(conn.execute("SELECT 41 + 1").fetchone()[0])

    sent = Echo("sent")
    got = await asyncio.gather(ledger.commits.run(reads), ledger.commits.run(sent))
    assert list(got) == [42, "sent"]
    assert threads[-1] != threading.get_ident()  # the batch ran on a writer thread
    assert sent.threads[-1] == threads[-1]


async def test_a_nul_in_text_fails_its_write_alone(pg: Opener) -> None:
    ledger = Ledger(pg())
    bad, good = Echo("a\x00b"), Echo("fine")
    results = await asyncio.gather(
        ledger.commits.run(bad), ledger.commits.run(good), return_exceptions=True
    )
    assert isinstance(results[0], Exception)
    assert results[1] == "fine"


async def test_a_failed_batch_fails_its_bad_write_alone_and_batches_go_on(pg: Opener) -> None:
    db = pg()
    ledger = Ledger(db)
    account = ledger.grant(hash_key("sk-a"), 10_000)
    first, again = await asyncio.gather(
        ledger.reserve(account, "r1", 100),
        ledger.reserve(account, "r1", 200),  # the same reservation id: refused by the key
        return_exceptions=True,
    )
    assert first is True
    assert isinstance(again, IntegrityError)
    assert ledger.get(account).reserved_msat == 100
    for i in range(3):  # later batches prepare their statements again, and run
        echo = Echo(f"after {i}")
        assert await ledger.commits.run(echo) == f"after {i}"
        assert echo.threads == [threading.get_ident()]
    assert await ledger.settle("r1", 60) == 60
    assert ledger.get(account).balance_msat == 9_940


@pytest.mark.timeout(30)
async def test_a_transaction_on_the_loop_waits_for_a_batch_that_holds_the_lock(
    pg: Opener,
) -> None:
    db: Store = pg()
    ledger = Ledger(db)
    account = ledger.grant(hash_key("sk-a"), 10_000)
    slow = asyncio.ensure_future(
        ledger.commits.run(Echo("slept", "SELECT CAST(:v AS TEXT) FROM pg_sleep(0.5)"))
    )
    await asyncio.sleep(0.1)  # the batch holds the write lock at the server now
    started = time.monotonic()
    with db.transaction() as conn:  # blocks the loop until the batch commits
        conn.execute("UPDATE accounts SET requests = requests + 1 WHERE id = ?", (account,))
    assert time.monotonic() - started > 0.2
    assert await slow == "slept"
    row = db.query_one("SELECT requests FROM accounts WHERE id = ?", (account,))
    assert row is not None and row[0] == 1


async def test_a_then_that_sends_a_statement_after_the_commit_fails_alone_and_runs_once(
    pg: Opener,
) -> None:
    db = pg()
    ledger = Ledger(db)
    account = ledger.grant(hash_key("sk-a"), 10_000)
    runs = 0

    def counts(conn: Connection) -> Any:
        nonlocal runs
        runs += 1
        conn.execute("UPDATE accounts SET requests = requests + 1 WHERE id = ?", (account,))
        return Then(lambda late: late.execute("SELECT 1").fetchone(), writes=False)

    fine = Echo("fine")
    results = await asyncio.gather(
        ledger.commits.run(counts), ledger.commits.run(fine), return_exceptions=True
    )
    assert isinstance(results[0], RuntimeError)
    assert results[1] == "fine"
    assert runs == 1  # committed once: not run again on a writer thread
    row = db.query_one("SELECT requests FROM accounts WHERE id = ?", (account,))
    assert row is not None and row[0] == 1


async def test_without_standard_conforming_strings_batches_go_to_the_threads(
    tmp_path: Path, pg_databases: Databases
) -> None:
    """Where a backslash in '…' would escape, no literal is written: values still arrive."""
    url = pg_databases.new()
    with psycopg.connect(url, autocommit=True) as admin:
        name = admin.info.dbname
        admin.execute(f"ALTER DATABASE {name} SET standard_conforming_strings = off")
    db = open_store(url, tmp_path / "unused", {"node": MIGRATIONS})
    try:
        ledger = Ledger(db)
        for _ in range(2):
            echoes = [Echo(text) for text in TEXTS]
            got = await asyncio.gather(*(ledger.commits.run(echo) for echo in echoes))
            assert got == TEXTS
            assert all(echo.threads[-1] != threading.get_ident() for echo in echoes)
    finally:
        db.close()


async def test_booleans_are_sent_as_zero_and_one(pg: Opener) -> None:
    ledger = Ledger(pg())
    echoes = [Echo(flag, "SELECT CAST(:v AS BIGINT)") for flag in (True, False)]
    got = await asyncio.gather(*(ledger.commits.run(echo) for echo in echoes))
    assert list(got) == [1, 0]
    assert all(echo.threads == [threading.get_ident()] for echo in echoes)  # sent, not threaded
