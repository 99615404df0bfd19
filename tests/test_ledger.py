"""The ledger on its own: reservations, settlement, orphans after a crash, audit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.errors import PaymentRequired
from node.ledger import MIGRATIONS, Ledger, hash_key
from node.store import IntegrityError
from tests.support.pg import BOTH_BACKENDS, Databases, Opener, eventually, store_opener

pytestmark = BOTH_BACKENDS


@pytest.fixture
def opener(tmp_path: Path, store_backend: str, pg_databases: Databases) -> Iterator[Opener]:
    with store_opener(tmp_path, store_backend, pg_databases, {"node": MIGRATIONS}) as open_db:
        yield open_db


@pytest.fixture
def ledger(opener: Opener) -> Ledger:
    return Ledger(opener())


def test_reserve_never_takes_more_than_is_available(ledger: Ledger) -> None:
    account = ledger.grant(hash_key("sk-a"), 100)
    assert ledger.reserve(account, "r1", 60)
    assert not ledger.reserve(account, "r2", 41)
    assert ledger.reserve(account, "r3", 40)
    assert ledger.get(account).available_msat == 0


def test_settle_charges_real_cost_and_releases_the_rest(ledger: Ledger) -> None:
    account = ledger.grant(hash_key("sk-a"), 100)
    ledger.reserve(account, "r1", 60)
    assert ledger.settle("r1", 25) == 25
    assert ledger.settle("r1", 25) == 0  # settling twice charges once
    got = ledger.get(account)
    assert (got.balance_msat, got.reserved_msat) == (75, 0)
    assert ledger.audit() == []


def test_settle_never_takes_the_account_below_zero(ledger: Ledger) -> None:
    account = ledger.grant(hash_key("sk-a"), 100)
    ledger.reserve(account, "r1", 30)
    ledger.reserve(account, "r2", 50)
    assert ledger.settle("r1", 500) == 50  # its 30 plus the 20 nobody holds
    assert ledger.settle("r2", 50) == 50
    assert ledger.get(account).balance_msat == 0
    assert ledger.audit() == []


def test_orphaned_reservations_are_charged_their_floor_at_start(opener: Opener) -> None:
    first = Ledger(opener())
    account = first.grant(hash_key("sk-a"), 1000)
    first.reserve(account, "r1", 600, floor_msat=70)
    first.db.close()  # the process dies with the request in flight
    second = Ledger(opener())
    eventually(lambda: second.resolve_orphans() == 1)
    got = second.get(account)
    assert (got.balance_msat, got.reserved_msat) == (930, 0)
    assert second.audit() == []


def test_debit_refuses_what_is_reserved(ledger: Ledger) -> None:
    account = ledger.grant(hash_key("sk-a"), 100)
    ledger.reserve(account, "r1", 80)
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


def test_a_live_instances_reservations_are_not_orphans(opener: Opener, store_backend: str) -> None:
    """Two instances on one database: the one starting leaves the other's requests alone."""
    if store_backend == "sqlite":
        pytest.skip("one node per SQLite database: every other instance is a dead one")
    running = Ledger(opener())
    account = running.grant(hash_key("sk-a"), 1000)
    running.reserve(account, "r1", 600, floor_msat=70)
    starting = Ledger(opener())
    assert starting.resolve_orphans() == 0
    assert starting.get(account).reserved_msat == 600
    running.db.close()  # now it is gone: its reservation is an orphan
    eventually(lambda: starting.resolve_orphans() == 1)
    got = starting.get(account)
    assert (got.balance_msat, got.reserved_msat) == (930, 0)
    assert starting.audit() == []
