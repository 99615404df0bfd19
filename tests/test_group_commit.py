"""Group commit: requests' reservations and settlements, durable together, each on its own."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.ledger import MIGRATIONS, Ledger, hash_key
from node.store import Database, IntegrityError
from tests.support.pg import BOTH_BACKENDS, Databases, Opener, store_opener

pytestmark = BOTH_BACKENDS


@pytest.fixture
def opener(tmp_path: Path, store_backend: str, pg_databases: Databases) -> Iterator[Opener]:
    with store_opener(tmp_path, store_backend, pg_databases, {"node": MIGRATIONS}) as open_db:
        yield open_db


@pytest.fixture
def ledger(opener: Opener) -> Ledger:
    return Ledger(opener())


async def test_a_write_is_durable_before_its_asker_resumes(ledger: Ledger, opener: Opener) -> None:
    account = ledger.grant(hash_key("sk-a"), 1000)
    assert await ledger.areserve(account, "r1", 600, floor_msat=50)
    elsewhere = Ledger(opener())  # another connection sees it: it is committed
    assert elsewhere.get(account).reserved_msat == 600
    assert await ledger.asettle("r1", 250) == 250
    assert elsewhere.get(account).balance_msat == 750
    assert elsewhere.open_reservations() == 0


async def test_concurrent_reservations_never_hold_more_than_the_balance(
    ledger: Ledger,
) -> None:
    account = ledger.grant(hash_key("sk-a"), 1000)
    held = await asyncio.gather(*(ledger.areserve(account, f"r{i}", 30) for i in range(50)))
    assert held.count(True) == 33
    got = ledger.get(account)
    assert (got.balance_msat, got.reserved_msat) == (1000, 990)
    charged = await asyncio.gather(*(ledger.asettle(f"r{i}", 40) for i in range(50)))
    assert sum(charged) == 1000  # 33 × 40 asked, never more than the account held
    assert ledger.get(account).balance_msat == 0
    assert ledger.audit() == []


async def test_one_failing_write_fails_alone(ledger: Ledger) -> None:
    account = ledger.grant(hash_key("sk-a"), 1000)
    assert await ledger.areserve(account, "taken", 100)
    results = await asyncio.gather(
        ledger.areserve(account, "r1", 100),
        ledger.areserve(account, "taken", 100),  # the same id again: refused by the database
        ledger.areserve(account, "r2", 100),
        return_exceptions=True,
    )
    assert results[0] is True and results[2] is True
    assert isinstance(results[1], IntegrityError)
    assert ledger.get(account).reserved_msat == 300
    assert ledger.audit() == []


async def test_a_write_is_made_even_if_its_asker_is_cancelled(ledger: Ledger) -> None:
    account = ledger.grant(hash_key("sk-a"), 1000)
    asker = asyncio.create_task(ledger.areserve(account, "r1", 100))
    await asyncio.sleep(0)  # the write is queued
    asker.cancel()
    await asyncio.sleep(0.01)
    assert asker.cancelled()
    assert ledger.get(account).reserved_msat == 100  # and a later release finds it
    await ledger.arelease("r1")
    assert ledger.get(account).reserved_msat == 0


async def test_writes_still_queued_at_shutdown_are_made(ledger: Ledger) -> None:
    account = ledger.grant(hash_key("sk-a"), 1000)
    askers = [asyncio.create_task(ledger.areserve(account, f"r{i}", 10)) for i in range(3)]
    await asyncio.sleep(0)  # queued, not yet committed
    ledger.commits.commit()  # what the node does on its way down
    assert ledger.get(account).reserved_msat == 30
    assert await asyncio.gather(*askers) == [True, True, True]


async def test_writes_asked_in_one_turn_share_one_commit(ledger: Ledger) -> None:
    db = ledger.db
    account = ledger.grant(hash_key("sk-a"), 10_000)
    if not isinstance(db, Database):  # PostgreSQL: every write of the batch sees one txid
        txids = await asyncio.gather(
            *(
                ledger.commits.run(lambda c: c.execute("SELECT txid_current()").fetchone()[0])
                for _ in range(20)
            )
        )
        assert len(set(txids)) == 1
        return
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    try:
        await asyncio.gather(*(ledger.areserve(account, f"r{i}", 10) for i in range(20)))
        await asyncio.gather(*(ledger.asettle(f"r{i}", 5) for i in range(20)))
    finally:
        db.conn.set_trace_callback(None)
    assert statements.count("COMMIT") == 2
    assert ledger.get(account).balance_msat == 10_000 - 20 * 5
