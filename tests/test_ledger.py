"""The ledger on its own: reservations, settlement, orphans after a crash, audit."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from node.errors import PaymentRequired
from node.ledger import MIGRATIONS, Ledger, hash_key
from node.store import Database


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(Database(tmp_path / "db.sqlite3", {"node": MIGRATIONS}))


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


def test_orphaned_reservations_are_charged_their_floor_at_start(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    first = Ledger(Database(path, {"node": MIGRATIONS}))
    account = first.grant(hash_key("sk-a"), 1000)
    first.reserve(account, "r1", 600, floor_msat=70)
    first.db.close()  # the process dies with the request in flight
    second = Ledger(Database(path, {"node": MIGRATIONS}))
    assert second.resolve_orphans() == 1
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
    with pytest.raises(sqlite3.IntegrityError), ledger.db.transaction() as conn:
        conn.execute("UPDATE entries SET amount_msat = 1")
    with pytest.raises(sqlite3.IntegrityError), ledger.db.transaction() as conn:
        conn.execute("DELETE FROM entries")


def test_keys_are_stored_only_as_hashes(ledger: Ledger) -> None:
    ledger.grant(hash_key("sk-secret-key"), 100)
    dump = "\n".join(ledger.db.conn.iterdump())
    assert "sk-secret-key" not in dump
    assert hash_key("sk-secret-key") in dump
