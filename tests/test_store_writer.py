"""Where the store's writes run: PostgreSQL's group commit on a writer thread (the event loop
keeps turning while a batch is out, and two instances' batches never interleave), SQLite's WAL
checkpoints on a thread of their own (never in a commit on the loop)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from node.db.sqlite import AUTOCHECKPOINT_PAGES, SqliteStore
from node.money.ledger import Ledger, hash_key
from node.money.records import Record, Records
from tests.support.pg import Opener, eventually
from wallet.store import Connection

T = TypeVar("T")


class Ticker:
    """Counts the turns a task sleeping 5 ms at a time gets while something is awaited."""

    def __init__(self) -> None:
        self.ticks = 0

    async def during(self, awaited: Awaitable[T]) -> tuple[T, int]:
        async def tick() -> None:
            while True:
                await asyncio.sleep(0.005)
                self.ticks += 1

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0.02)
        before = self.ticks
        try:
            return await awaited, self.ticks - before
        finally:
            ticker.cancel()


async def test_the_loop_turns_while_a_postgres_batch_is_out(pg: Opener) -> None:
    ledger = Ledger(pg())
    write = ledger.commits.run(lambda c: c.execute("SELECT pg_sleep(0.3)").fetchone())
    slept, ticks = await Ticker().during(write)
    assert slept is not None
    assert ticks >= 10  # a batch run on the loop would have let it tick once at most


async def test_the_loop_turns_while_a_postgres_read_is_out(pg: Opener) -> None:
    db = pg()
    rows, ticks = await Ticker().during(db.read("SELECT 7 AS n FROM pg_sleep(0.3)"))
    assert [row["n"] for row in rows] == [7]
    assert ticks >= 10


async def test_two_instances_paying_at_once_charge_each_request_once(pg: Opener) -> None:
    """400 reservations and settlements at once on two instances (two stores, two writer
    threads) over five accounts: every charge lands once, no balance goes below zero."""
    first, second = Ledger(pg()), Ledger(pg())
    accounts = [first.grant(hash_key(f"sk-{i}"), 50_000) for i in range(5)]
    rng = random.Random(28)
    jobs = [
        (rng.choice(accounts), rng.randrange(100, 2_000), rng.randrange(0, 2_500))
        for _ in range(400)
    ]

    async def pay(i: int, account: int, held: int, cost: int) -> int:
        ledger = (first, second)[i % 2]
        if not await ledger.reserve(account, f"r{i}", held, floor_msat=held // 4):
            return -1
        await asyncio.sleep(rng.random() / 100)
        return await ledger.settle(f"r{i}", cost)

    charged = await asyncio.gather(*(pay(i, *job) for i, job in enumerate(jobs)))
    assert -1 in charged and any(c > 0 for c in charged)  # some refused, most paid
    for account in accounts:
        paid = sum(c for c, job in zip(charged, jobs, strict=True) if job[0] == account and c > 0)
        state = first.get(account)
        assert state.balance_msat == 50_000 - paid >= 0
        assert state.reserved_msat == 0
    assert first.audit() == [] and first.open_reservations() == 0
    entries = first.db.query_one("SELECT COUNT(*) FROM entries WHERE kind = 'charge'")
    assert entries is not None and entries[0] == sum(c > 0 for c in charged)


async def test_two_settlements_of_one_reservation_on_two_instances_charge_once(
    pg: Opener,
) -> None:
    first, second = Ledger(pg()), Ledger(pg())
    account = first.grant(hash_key("sk-a"), 10_000)
    assert await first.reserve(account, "r", 5_000)
    results = await asyncio.gather(*(ledger.settle("r", 3_000) for ledger in (first, second) * 5))
    assert sorted(results) == [0] * 9 + [3_000]
    assert first.get(account).balance_msat == 7_000 and first.audit() == []


async def test_settlements_sent_with_their_records_record_each_charge_once(pg: Opener) -> None:
    """A settlement's record goes with it, before its answer (node.money.ledger_pg.Settling):
    each settled reservation gets one record of its exact charge, in batches of several; one
    the account cannot pay in full (its batch fails, then runs each write alone) is recorded
    with the charge it got; settling again records nothing."""
    db = pg()
    ledger, book = Ledger(db), Records(db, history_days=30)
    rich, poor = (
        ledger.grant(hash_key("sk-rich"), 100_000),
        ledger.grant(hash_key("sk-poor"), 10_000),
    )

    def record(rid: str, account: int) -> Callable[[Connection, int], None]:
        def write(conn: Connection, charged: int) -> None:
            made = Record(rid, account, None, 0, "/v1/x", "m", "u", 1, 2, 0, 0, charged, "ok", 5)
            book.write(conn, made)

        return write

    assert await ledger.reserve(poor, "p", 5_000)
    for i in range(6):
        assert await ledger.reserve(rich, f"r{i}", 5_000)
    settle = [ledger.settle(f"r{i}", 1_000 + i, record(f"r{i}", rich)) for i in range(6)]
    settle += [ledger.settle("p", 20_000, record("p", poor))]  # 10 000 is all it has
    settle += [ledger.settle("r0", 9, record("r0", rich))]  # settled already
    charged = await asyncio.gather(*settle)
    assert charged == [1_000, 1_001, 1_002, 1_003, 1_004, 1_005, 10_000, 0]
    rows = db.query("SELECT request_id, cost_msat FROM request_records ORDER BY request_id")
    assert [tuple(r) for r in rows] == [("p", 10_000)] + [(f"r{i}", 1_000 + i) for i in range(6)]
    assert ledger.get(poor).balance_msat == 0 and ledger.audit() == []


def test_sqlite_checkpoints_the_wal_off_the_writing_connection(tmp_path: Path) -> None:
    """SQLite would checkpoint in the commit that crosses 1 000 pages, on the event loop; here
    that bound is far away and the checkpoint thread copies the WAL into the database."""
    path = tmp_path / "db.sqlite3"
    db = SqliteStore(path, {"test": ["CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB)"]})
    try:
        assert db.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == AUTOCHECKPOINT_PAGES
        for _ in range(40):  # ~10 MB, ~2 500 pages: past SQLite's own 1 000, short of the bound
            with db.transaction() as conn:
                conn.executemany(
                    "INSERT INTO blobs (b) VALUES (?)", [(random.randbytes(4096),)] * 64
                )
        checkpoints = db.checkpoints
        assert checkpoints is not None
        eventually(lambda: checkpoints.done and path.stat().st_size > 8_000_000, timeout_s=10)
    finally:
        db.close()
