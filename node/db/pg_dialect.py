"""SQLite's dialect, as PostgreSQL takes it: the one place it is translated.

`?` and `:name` parameters; `lastrowid` (an INSERT into a table with an `id` key gets
`RETURNING id`); rows readable by name and by position; integral NUMERIC sums as int;
booleans as 0/1; the migrations' DDL (INTEGER → BIGINT, `id INTEGER PRIMARY KEY` →
BIGSERIAL, the append-only triggers).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from node.db.store import Params

ID_TABLE = re.compile(r"CREATE TABLE (\w+)\s*\(\s*id INTEGER PRIMARY KEY", re.IGNORECASE)
_INSERT = re.compile(r"^\s*INSERT INTO (\w+)", re.IGNORECASE)
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_TRIGGER = re.compile(
    r"CREATE TRIGGER (\w+) BEFORE (UPDATE|DELETE) ON (\w+)\s+"
    r"BEGIN SELECT RAISE\(ABORT, '([^']*)'\); END;",
    re.IGNORECASE,
)


def translate_ddl(script: str) -> str:
    """A migration written for SQLite, in PostgreSQL's dialect."""
    script = re.sub(r"\bid INTEGER PRIMARY KEY\b", "id BIGSERIAL PRIMARY KEY", script)
    script = re.sub(r"\bINTEGER\b", "BIGINT", script)
    script = re.sub(r"\bBLOB\b", "BYTEA", script)
    script = re.sub(r"\bREAL\b", "DOUBLE PRECISION", script)
    return _TRIGGER.sub(
        lambda m: (
            f"CREATE FUNCTION {m[1]}_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f" RAISE EXCEPTION '{m[4]}' USING ERRCODE = 'integrity_constraint_violation';"
            f" END $$;\nCREATE TRIGGER {m[1]} BEFORE {m[2]} ON {m[3]}"
            f" FOR EACH ROW EXECUTE FUNCTION {m[1]}_fn();"
        ),
        script,
    )


@functools.lru_cache(maxsize=1024)
def translate(sql: str, named: bool, id_tables: frozenset[str]) -> tuple[str, bool]:
    """(PostgreSQL's text, whether `RETURNING id` was added for lastrowid)."""
    sql = sql.replace("%", "%%")
    sql = _NAMED.sub(r"%(\1)s", sql) if named else sql.replace("?", "%s")
    insert = _INSERT.match(sql)
    if insert and insert[1].lower() in id_tables and "RETURNING" not in sql.upper():
        return sql + " RETURNING id", True
    return sql, False


class PgRow(tuple[Any, ...]):
    """sqlite3.Row's behaviour: row["name"], row[0], unpacking, dict(row)."""

    _index: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(self._index[key])
        return super().__getitem__(key)

    def keys(self) -> list[str]:
        return list(self._index)


def _value(value: Any) -> Any:
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)  # SUM() of BIGINT is NUMERIC in PostgreSQL
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def row_factory(cursor: Any) -> Callable[[Sequence[Any]], PgRow]:
    index = {column.name: i for i, column in enumerate(cursor.description or [])}

    def make(values: Sequence[Any]) -> PgRow:
        row = PgRow(_value(v) for v in values)
        row._index = index
        return row

    return make


def sql_params(params: Params) -> Params:
    if isinstance(params, Mapping):
        return {k: int(v) if isinstance(v, bool) else v for k, v in params.items()}
    return [int(v) if isinstance(v, bool) else v for v in params]
