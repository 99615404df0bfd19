"""Operator credit in the ledger: granted, charged first, never withdrawn, bounded by the
database itself, flagged by the audit, and carried over from before it was tracked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.db.open import open_store
from node.db.sqlite import SqliteStore
from node.db.store import IntegrityError
from node.errors import Forbidden, PaymentRequired
from node.money.ledger import DEPOSIT, GRANT, MIGRATIONS, WITHDRAW, Ledger, hash_key
from tests.support.pg import BOTH_BACKENDS, Databases, Opener, store_opener

pytestmark = BOTH_BACKENDS


@pytest.fixture
def opener(tmp_path: Path, store_backend: str, pg_databases: Databases) -> Iterator[Opener]:
    with store_opener(tmp_path, store_backend, pg_databases, {"node": MIGRATIONS}) as open_db:
        yield open_db


@pytest.fixture
def ledger(opener: Opener) -> Ledger:
    return Ledger(opener())


def funded(ledger: Ledger, credit_msat: int, ecash_msat: int) -> int:
    account = ledger.grant(hash_key("sk-a"), credit_msat)
    with ledger.db.transaction() as conn:
        ledger.credit(conn, account, ecash_msat, DEPOSIT, "topup:test")
    return account


async def test_charges_take_credit_first(ledger: Ledger) -> None:
    account = funded(ledger, 5_000, 20_000)
    await ledger.reserve(account, "r1", 8_000)
    # the request may be paid from credit: only what credit cannot cover is held from ecash
    assert ledger.get(account).withdrawable_msat == 25_000 - 8_000
    assert await ledger.settle("r1", 3_000) == 3_000
    got = ledger.get(account)
    assert (got.balance_msat, got.credit_msat, got.withdrawable_msat) == (22_000, 2_000, 20_000)
    await ledger.reserve(account, "r2", 10_000)
    assert await ledger.settle("r2", 6_000) == 6_000  # 2 000 of credit, then 4 000 of ecash
    got = ledger.get(account)
    assert (got.balance_msat, got.credit_msat, got.withdrawable_msat) == (16_000, 0, 16_000)
    assert ledger.audit() == []


def test_a_withdraw_never_reaches_into_credit(ledger: Ledger) -> None:
    account = funded(ledger, 5_000, 20_000)
    with pytest.raises(Forbidden) as refused, ledger.db.transaction() as conn:
        ledger.debit(conn, account, 21_000, WITHDRAW, "withdraw:1:k")
    assert refused.value.code == "credit_not_withdrawable"
    assert "20 sat can be withdrawn" in refused.value.message
    with pytest.raises(Forbidden) as refused, ledger.db.transaction() as conn:
        ledger.debit(conn, account, 20_000, WITHDRAW, "withdraw:1:k", fee_msat=1_000)
    assert "fee of 1 sat" in refused.value.message  # the fee would have come out of credit
    with pytest.raises(PaymentRequired) as short, ledger.db.transaction() as conn:
        ledger.debit(conn, account, 24_000, WITHDRAW, "withdraw:1:k", fee_msat=2_000)
    assert "fee of 2 sat" in short.value.message  # beyond the whole balance: a 402
    with ledger.db.transaction() as conn:
        ledger.debit(conn, account, 19_000, WITHDRAW, "withdraw:1:k", fee_msat=1_000)
    got = ledger.get(account)
    assert (got.balance_msat, got.credit_msat, got.withdrawable_msat) == (5_000, 5_000, 0)
    kinds = [r["kind"] for r in ledger.db.query("SELECT kind FROM entries ORDER BY id")]
    assert kinds == [GRANT, DEPOSIT, WITHDRAW, "payout_fee"]
    assert ledger.liabilities_msat() == 0 and ledger.audit() == []


def test_the_database_keeps_credit_within_the_balance(ledger: Ledger) -> None:
    account = funded(ledger, 5_000, 0)
    with pytest.raises(IntegrityError), ledger.db.transaction() as conn:
        conn.execute("UPDATE accounts SET balance_msat = 4000 WHERE id = ?", (account,))
    with pytest.raises(IntegrityError), ledger.db.transaction() as conn:
        conn.execute("UPDATE accounts SET credit_msat = -1 WHERE id = ?", (account,))


def test_the_audit_flags_credit_outside_the_balance(ledger: Ledger, store_backend: str) -> None:
    if store_backend != "sqlite":
        pytest.skip("only SQLite can be told to ignore the CHECK, as a damaged file would")
    account = funded(ledger, 5_000, 0)
    db = ledger.db
    assert isinstance(db, SqliteStore)
    db.conn.execute("PRAGMA ignore_check_constraints = ON")
    with db.transaction() as conn:
        conn.execute("UPDATE accounts SET credit_msat = 9000 WHERE id = ?", (account,))
    [flagged] = ledger.audit()
    assert (flagged.account_id, flagged.check, flagged.entries_msat) == (account, "credit", 9000)


def test_credit_of_keys_granted_before_it_was_tracked_is_carried_over(
    tmp_path: Path, store_backend: str, pg_databases: Databases
) -> None:
    """The migration counts a key's grants less its charges as credit, within its balance."""
    url = pg_databases.new() if store_backend == "postgres" else ""
    path = tmp_path / "old.sqlite3"
    old = open_store(url, path, {"node": MIGRATIONS[:2]})
    with old.transaction() as conn:
        for key, grant, charge, deposit in (("a", 5000, 3000, 0), ("b", 5000, 0, 7000)):
            conn.execute(
                "INSERT INTO accounts (key_hash, kind, balance_msat, created_at)"
                " VALUES (?, 'key', ?, 0)",
                (key, grant - charge + deposit),
            )
            entries = [("grant", grant), ("charge", -charge), ("deposit", deposit)]
            conn.executemany(
                "INSERT INTO entries (account_id, kind, amount_msat, ref, created_at)"
                " SELECT id, ?, ?, 'x', 0 FROM accounts WHERE key_hash = ?",
                [(kind, amount, key) for kind, amount in entries if amount],
            )
    old.close()
    new = Ledger(open_store(url, path, {"node": MIGRATIONS}))
    try:
        credits = {r[0]: r[1] for r in new.db.query("SELECT key_hash, credit_msat FROM accounts")}
        assert credits == {"a": 2000, "b": 5000}
        assert new.liabilities_msat() == 7000 and new.audit() == []
    finally:
        new.db.close()
