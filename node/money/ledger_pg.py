"""The reservation and the settlement as one statement each, for PostgreSQL.

The same effects as Ledger._reserve and Ledger._settle (ledger.py), written as data-modifying
CTEs so that each is a single statement whose answer is read only after the group commit's
batch has sent every write (a `Then`, see node.db.store): the batch then waits for the server
once, instead of once per statement. The settlement's record (its `also`) is sent with it,
before its answer (`Settling`), so a batch of settlements waits once too. A reservation may
also check that its key still has no rules (`ruleless`: node.money.keys answers such a key
from memory), as SQLite's does. SQLite has no data-modifying CTEs; it keeps the
statement-by-statement writes, which cost it no round trip.

Each statement runs under the write lock, like every write: it sees every earlier statement of
its transaction and nothing else changes the rows meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from node.db.store import Params, Then, Write
from node.money.ledger_schema import CHARGE
from wallet.store import Connection, Cursor

# A write joined to a settlement's transaction, told the msat charged (node.money.records).
Also = Callable[[Connection, int], None]

# Shared with the ledger's SQLite statements: a one-shot account still untouched; the key a
# reservation is for still has no rules.
UNTOUCHED = " AND reserved_msat = 0 AND balance_msat = :untouched"
RULELESS = " AND NOT EXISTS (SELECT 1 FROM key_rules WHERE account_id = :key)"

# Hold :a on the account when its available balance covers it; count the use on the sub-key
# (when it is one); the reservation's row. No row back: refused, and nothing was written.
_RESERVE = """
WITH held AS (
    UPDATE accounts SET reserved_msat = reserved_msat + :a, last_used_at = :now,
        requests = requests + 1{spender}
    WHERE id = :id AND balance_msat - reserved_msat >= :a{untouched}{ruleless}
    RETURNING id
), used AS (
    UPDATE accounts SET last_used_at = :now, requests = requests + 1
    WHERE id = :key AND :key <> :id AND EXISTS (SELECT 1 FROM held)
)
INSERT INTO reservations (id, account_id, amount_msat, floor_msat, model, created_at,
    instance, key_id)
SELECT :rid, id, :a, :floor, :model, :now, :instance, :key FROM held
RETURNING 1
"""
# By (a one-shot account: untouched, and named spent; ruleless); built once.
_RESERVES = {
    (spends, ruleless): _RESERVE.format(
        spender=", request_id = :rid" if spends else "",
        untouched=UNTOUCHED if spends else "",
        ruleless=RULELESS if ruleless else "",
    )
    for spends in (False, True)
    for ruleless in (False, True)
}

# Delete the reservation; charge the cost, capped at what the account can pay (the held
# amount plus the unreserved balance), operator credit first; release the rest; the charge's
# entry; the rows of an `also` sent with it (`Settling`). No row back: the reservation was
# settled already, and nothing was written; else the msat charged.
_SETTLE_CTES = f"""
WITH r AS (
    DELETE FROM reservations WHERE id = :rid RETURNING account_id, amount_msat, key_id
), c AS (
    SELECT r.account_id, r.amount_msat AS held, r.key_id,
        LEAST(:cost, r.amount_msat + a.balance_msat - a.reserved_msat) AS charged
    FROM r JOIN accounts a ON a.id = r.account_id
), u AS (
    UPDATE accounts SET balance_msat = balance_msat - c.charged,
        reserved_msat = reserved_msat - c.held,
        credit_msat = CASE WHEN credit_msat > c.charged THEN credit_msat - c.charged ELSE 0 END
    FROM c WHERE accounts.id = c.account_id
), e AS (
    INSERT INTO entries (account_id, kind, amount_msat, ref, created_at, key_id)
    SELECT account_id, '{CHARGE}', -charged, :rid, :now, key_id FROM c WHERE charged > 0
)
"""
_CHARGED = """
SELECT charged FROM c
"""
_SETTLE = _SETTLE_CTES + _CHARGED


def reserve(
    account_id: int,
    reservation_id: str,
    amount_msat: int,
    floor_msat: int,
    model: str | None,
    untouched_msat: int | None,
    key_id: int | None,
    instance: str,
    ruleless: bool = False,
) -> Write:
    """The write for Ledger.reserve (no caps); Then: whether the amount was held.
    `ruleless`: also not held if the key has rules (it had none when it was read)."""
    sql = _RESERVES[untouched_msat is not None, ruleless]
    params = {
        "a": amount_msat,
        "id": account_id,
        "rid": reservation_id,
        "now": int(time.time()),
        "floor": min(floor_msat, amount_msat),
        "model": model,
        "instance": instance,
        "key": key_id,
        "untouched": untouched_msat,
    }

    def write(conn: Connection) -> Then:
        cur = conn.execute(sql, params)
        return Then(lambda _: cur.fetchone() is not None, writes=False)

    return write


def settle(reservation_id: str, cost_msat: int, also: Also | None) -> Write:
    """The write for Ledger.settle; Then: the msat charged (0 when already settled). `also`
    runs, told the charge, only when the reservation was there.

    The first time it runs, `also` is sent with the settlement, before its answer, told the
    charge it will be when the account can pay it all (`Settling`): the batch then waits for
    the server once. Should the account be short, the batch fails and the group commit runs
    this write again, alone: then the settlement's answer is awaited before `also` runs."""
    params = {"rid": reservation_id, "cost": cost_msat, "now": int(time.time())}
    runs = 0

    def write(conn: Connection) -> Then:
        nonlocal runs
        runs += 1
        sent = also is not None and runs == 1
        sql, values = _SETTLE, params
        if sent:
            assert also is not None
            rows = Settling()
            also(rows, cost_msat)
            sql, values = rows.statement(params)
        cur = conn.execute(sql, values)

        def charged(conn: Connection) -> int:
            row = cur.fetchone()
            if row is None:
                return 0
            if also is not None and not sent:
                also(conn, int(row[0]))
            return int(row[0])

        return Then(charged, writes=also is not None and not sent)

    return write


class Settling:
    """The connection an `also` is given when it is sent with its settlement, before the
    settlement's answer: its rows are inserted by the settlement's own statement, only if it
    finds the reservation (else nothing is written), and only with the charge `also` was
    told (else the statement fails, and with it the batch). Only `insert` is offered: any
    other statement fails the batch, which the group commit then runs again, each write
    alone and answered in turn."""

    def __init__(self) -> None:
        self._rows: list[tuple[str, Mapping[str, Any], str]] = []

    def insert(self, table: str, row: Mapping[str, Any], charged: str) -> None:
        """INSERT `row` into `table` with the settlement, its column `charged` the charge."""
        self._rows.append((table, row, charged))

    def statement(self, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The settlement's statement and parameters, with the rows inserted."""
        ctes, values = [], dict(params)
        for i, (table, row, charged) in enumerate(self._rows):
            names = [f":also{i}_{name}" for name in row]
            # NULL, which the column refuses, if the charge is not what `also` was told
            names[list(row).index(charged)] = "CASE WHEN charged = :cost THEN charged END"
            ctes.append(
                f", also{i} AS (INSERT INTO {table} ({', '.join(row)})"
                f" SELECT {', '.join(names)} FROM c)"
            )
            values.update({f"also{i}_{name}": value for name, value in row.items()})
        return _SETTLE_CTES + "".join(ctes) + _CHARGED, values

    def execute(self, sql: str, params: Params = (), /) -> Cursor:
        raise NotImplementedError("only insert() is sent with a settlement")

    def executemany(self, sql: str, params: Iterable[Params], /) -> Cursor:
        raise NotImplementedError("only insert() is sent with a settlement")
