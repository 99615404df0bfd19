"""A key found to have no rules is answered from memory afterwards (no read per paid
request); its reservation checks, in its own write, that it still has none. Rules given to it
meanwhile by another instance (PostgreSQL) or process (SQLite: the CLI) apply to its next
reservation all the same."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.errors import PaymentRequired, Unauthorized
from node.money import keys
from node.money.keys import Keys, Rules
from node.money.ledger import MIGRATIONS, Ledger, hash_key
from tests.support.pg import BOTH_BACKENDS, Databases, Opener, store_opener

pytestmark = BOTH_BACKENDS


@pytest.fixture
def db(tmp_path: Path, store_backend: str, pg_databases: Databases) -> Iterator[Opener]:
    migrations = {"node": MIGRATIONS, "keys": keys.MIGRATIONS}
    with store_opener(tmp_path, store_backend, pg_databases, migrations) as open_db:
        yield open_db


def instance(open_db: Opener) -> tuple[Ledger, Keys]:
    ledger = Ledger(open_db())
    return ledger, Keys(ledger.db, ledger)


async def test_a_key_without_rules_is_read_once_then_reserves(db: Opener) -> None:
    ledger, here = instance(db)
    account = ledger.grant(hash_key("sk-a"), 10_000)
    assert await here.read(account) is None
    ledger.db.close()  # answered from memory now: no read
    assert await here.read(account) is None
    here.db = ledger.db = ledger.commits.db = db()
    assert await ledger.reserve(account, "r1", 4_000, key_id=account)
    assert not await ledger.reserve(account, "r2", 7_000, key_id=account)  # short of balance
    assert await ledger.settle("r1", 1_000) == 1_000
    assert ledger.get(account).balance_msat == 9_000 and ledger.audit() == []


async def test_a_key_revoked_on_another_instance_is_refused_at_its_reservation(
    db: Opener,
) -> None:
    ledger, here = instance(db)
    _, there = instance(db)
    account = ledger.grant(hash_key("sk-a"), 10_000)
    assert await here.read(account) is None
    there.set_rules(account, Rules())  # as the admin does for a key without rules
    made = there.get(account)
    assert made is not None
    there.revoke(made)
    assert await here.read(account) is None  # from memory: the reservation finds out
    with pytest.raises(Unauthorized) as refused:
        await ledger.reserve(account, "r", 1_000, key_id=account)
    assert refused.value.code == "key_revoked"
    assert ledger.open_reservations() == 0
    assert (await here.read(account)) is not None  # read again from now on


async def test_a_limit_set_on_another_instance_caps_the_next_reservation(db: Opener) -> None:
    ledger, here = instance(db)
    _, there = instance(db)
    account = ledger.grant(hash_key("sk-a"), 10_000)
    assert await here.read(account) is None
    there.set_rules(account, Rules(spend_limit_msat=3_000))
    with pytest.raises(PaymentRequired) as refused:  # not False: the caller knows no cap
        await ledger.reserve(account, "r1", 4_000, key_id=account)
    assert refused.value.code == "key_limit_reached"
    rules = await here.read(account)
    assert rules is not None and rules.rules.spend_limit_msat == 3_000
    assert await ledger.reserve(account, "r2", 2_000, key_id=account, caps=here.admit(rules, None))
    assert ledger.open_reservations() == 1


async def test_concurrent_reservations_of_a_key_given_a_limit_meanwhile_stay_within_it(
    db: Opener,
) -> None:
    """Twenty requests at once, each answered from memory as having no rules, after a limit
    was set elsewhere: each reservation finds the rules in its own write, reads them, and the
    limit holds across them all (exactly as many as fit, none past it)."""
    ledger, here = instance(db)
    _, there = instance(db)
    account = ledger.grant(hash_key("sk-a"), 100_000)
    assert await here.read(account) is None
    there.set_rules(account, Rules(spend_limit_msat=10_000))

    async def one(i: int) -> bool:
        try:
            return await ledger.reserve(account, f"r{i}", 1_000, key_id=account)
        except PaymentRequired as refused:
            assert refused.code == "key_limit_reached"
            return False

    held = await asyncio.gather(*(one(i) for i in range(20)))
    assert sum(held) == 10
    assert ledger.open_reservations() == 10
    assert ledger.get(account).reserved_msat == 10_000 and ledger.audit() == []
