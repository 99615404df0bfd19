"""The ledger on its own: reservations, settlement, orphans after a crash, audit; and the group
commit that makes requests' reservations and settlements durable together."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.db.sqlite import SqliteStore
from node.db.store import IntegrityError
from node.errors import PaymentRequired
from node.money.ledger import MIGRATIONS, Ledger, hash_key
from tests.support.pg import BOTH_BACKENDS, Databases, Opener, eventually, store_opener

pytestmark = BOTH_BACKENDS


@pytest.fixture
def opener(tmp_path: Path, store_backend: str, pg_databases: Databases) -> Iterator[Opener]:
    with store_opener(tmp_path, store_backend, pg_databases, {"node": MIGRATIONS}) as open_db:
        yield open_db


@pytest.fixture
def ledger(opener: Opener) -> Ledger:
    return Ledger(opener())


async def test_reserve_never_takes_more_than_is_available(ledger: Ledger) -> None:
    account = ledger.grant(hash_key("sk-a"), 100)
    assert await ledger.reserve(account, "r1", 60)
    assert not await ledger.reserve(account, "r2", 41)
    assert await ledger.reserve(account, "r3", 40)
    assert ledger.get(account).available_msat == 0


async def test_settle_charges_real_cost_and_releases_the_rest(ledger: Ledger) -> None:
    account = ledger.grant(hash_key("sk-a"), 100)
    await ledger.reserve(account, "r1", 60)
    assert await ledger.settle("r1", 25) == 25
    assert await ledger.settle("r1", 25) == 0  # settling twice charges once
    got = ledger.get(account)
    assert (got.balance_msat, got.reserved_msat) == (75, 0)
    assert ledger.audit() == []


async def test_settle_never_takes_the_account_below_zero(ledger: Ledger) -> None:
    account = ledger.grant(hash_key("sk-a"), 100)
    await ledger.reserve(account, "r1", 30)
    await ledger.reserve(account, "r2", 50)
    assert await ledger.settle("r1", 500) == 50  # its 30 plus the 20 nobody holds
    assert await ledger.settle("r2", 50) == 50
    assert ledger.get(account).balance_msat == 0
    assert ledger.audit() == []


async def test_a_cost_above_the_reservation_is_charged_from_the_unreserved_balance(
    ledger: Ledger,
) -> None:
    account = ledger.grant(hash_key("sk-a"), 100)
    await ledger.reserve(account, "r1", 30)
    await ledger.reserve(account, "r2", 40)
    assert await ledger.settle("r1", 60) == 60  # its 30 and 30 of the 30 nobody holds
    got = ledger.get(account)
    assert (got.balance_msat, got.reserved_msat) == (40, 40)
    assert await ledger.settle("r2", 41) == 40
    assert ledger.get(account).balance_msat == 0
    assert ledger.audit() == []


async def test_orphaned_reservations_are_charged_their_floor_at_start(opener: Opener) -> None:
    first = Ledger(opener())
    account = first.grant(hash_key("sk-a"), 1000)
    await first.reserve(account, "r1", 600, floor_msat=70)
    first.db.close()  # the process dies with the request in flight
    second = Ledger(opener())
    eventually(lambda: second.resolve_orphans() == 1)
    got = second.get(account)
    assert (got.balance_msat, got.reserved_msat) == (930, 0)
    assert second.audit() == []


async def test_debit_refuses_what_is_reserved(ledger: Ledger) -> None:
    account = ledger.grant(hash_key("sk-a"), 100)
    await ledger.reserve(account, "r1", 80)
    with pytest.raises(PaymentRequired), ledger.db.transaction() as conn:
        ledger.debit(conn, account, 30, "withdraw", "w1")
    assert ledger.get(account).balance_msat == 100
    assert ledger.audit() == []


def test_audit_finds_a_balance_changed_behind_the_ledger(ledger: Ledger) -> None:
    account = ledger.grant(hash_key("sk-a"), 100)
    with ledger.db.transaction() as conn:
        conn.execute("UPDATE accounts SET balance_msat = 150 WHERE id = ?", (account,))
    [mismatch] = ledger.audit()
    assert (mismatch.account_id, mismatch.balance_msat, mismatch.entries_msat) == (
        account,
        150,
        100,
    )


def test_entries_are_append_only(ledger: Ledger) -> None:
    ledger.grant(hash_key("sk-a"), 100)
    with pytest.raises(IntegrityError), ledger.db.transaction() as conn:
        conn.execute("UPDATE entries SET amount_msat = 1")
    with pytest.raises(IntegrityError), ledger.db.transaction() as conn:
        conn.execute("DELETE FROM entries")


def test_keys_are_stored_only_as_hashes(ledger: Ledger) -> None:
    ledger.grant(hash_key("sk-secret-key"), 100)
    tables = ["accounts", "entries", "reservations"]
    dump = "\n".join(str(tuple(r)) for t in tables for r in ledger.db.query(f"SELECT * FROM {t}"))
    assert "sk-secret-key" not in dump
    assert hash_key("sk-secret-key") in dump


async def test_a_live_instances_reservations_are_not_orphans(
    opener: Opener, store_backend: str
) -> None:
    """Two instances on one database: the one starting leaves the other's requests alone."""
    if store_backend == "sqlite":
        pytest.skip("one node per SQLite database: every other instance is a dead one")
    running = Ledger(opener())
    account = running.grant(hash_key("sk-a"), 1000)
    await running.reserve(account, "r1", 600, floor_msat=70)
    starting = Ledger(opener())
    assert starting.resolve_orphans() == 0
    assert starting.get(account).reserved_msat == 600
    running.db.close()  # now it is gone: its reservation is an orphan
    eventually(lambda: starting.resolve_orphans() == 1)
    got = starting.get(account)
    assert (got.balance_msat, got.reserved_msat) == (930, 0)
    assert starting.audit() == []


# --- group commit -----------------------------------------------------------------------


async def test_a_write_is_durable_before_its_asker_resumes(ledger: Ledger, opener: Opener) -> None:
    account = ledger.grant(hash_key("sk-a"), 1000)
    assert await ledger.reserve(account, "r1", 600, floor_msat=50)
    elsewhere = Ledger(opener())  # another connection sees it: it is committed
    assert elsewhere.get(account).reserved_msat == 600
    assert await ledger.settle("r1", 250) == 250
    assert elsewhere.get(account).balance_msat == 750
    assert elsewhere.open_reservations() == 0


async def test_concurrent_reservations_never_hold_more_than_the_balance(
    ledger: Ledger,
) -> None:
    account = ledger.grant(hash_key("sk-a"), 1000)
    held = await asyncio.gather(*(ledger.reserve(account, f"r{i}", 30) for i in range(50)))
    assert held.count(True) == 33
    got = ledger.get(account)
    assert (got.balance_msat, got.reserved_msat) == (1000, 990)
    charged = await asyncio.gather(*(ledger.settle(f"r{i}", 40) for i in range(50)))
    assert sum(charged) == 1000  # 33 × 40 asked, never more than the account held
    assert ledger.get(account).balance_msat == 0
    assert ledger.audit() == []


async def test_one_failing_write_fails_alone(ledger: Ledger) -> None:
    account = ledger.grant(hash_key("sk-a"), 1000)
    assert await ledger.reserve(account, "taken", 100)
    results = await asyncio.gather(
        ledger.reserve(account, "r1", 100),
        ledger.reserve(account, "taken", 100),  # the same id again: refused by the database
        ledger.reserve(account, "r2", 100),
        return_exceptions=True,
    )
    assert results[0] is True and results[2] is True
    assert isinstance(results[1], IntegrityError)
    assert ledger.get(account).reserved_msat == 300
    assert ledger.audit() == []


async def test_a_write_is_made_even_if_its_asker_is_cancelled(ledger: Ledger) -> None:
    account = ledger.grant(hash_key("sk-a"), 1000)
    asker = asyncio.create_task(ledger.reserve(account, "r1", 100))
    await asyncio.sleep(0)  # the write is queued
    asker.cancel()
    for _ in range(500):  # the batch commits on a later turn of the loop, or on the writer
        await asyncio.sleep(0.01)
        if ledger.get(account).reserved_msat:
            break
    assert asker.cancelled()
    assert ledger.get(account).reserved_msat == 100  # and a later release finds it
    await ledger.release("r1")
    assert ledger.get(account).reserved_msat == 0


async def test_writes_still_queued_at_shutdown_are_made(ledger: Ledger) -> None:
    account = ledger.grant(hash_key("sk-a"), 1000)
    askers = [asyncio.create_task(ledger.reserve(account, f"r{i}", 10)) for i in range(3)]
    await asyncio.sleep(0)  # queued, not yet committed
    await ledger.commits.flush()  # what the node does on its way down
    assert ledger.get(account).reserved_msat == 30
    assert await asyncio.gather(*askers) == [True, True, True]


async def test_writes_asked_in_one_turn_share_one_commit(ledger: Ledger) -> None:
    db = ledger.db
    account = ledger.grant(hash_key("sk-a"), 10_000)
    if not isinstance(db, SqliteStore):  # PostgreSQL: every write of the batch sees one txid
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
        await asyncio.gather(*(ledger.reserve(account, f"r{i}", 10) for i in range(20)))
        await asyncio.gather(*(ledger.settle(f"r{i}", 5) for i in range(20)))
    finally:
        db.conn.set_trace_callback(None)
    assert statements.count("COMMIT") == 2
    assert ledger.get(account).balance_msat == 10_000 - 20 * 5
