"""The store on both backends: the same SQL, rows and errors; instances and singletons."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.db.store import IntegrityError
from tests.support.pg import BOTH_BACKENDS, Databases, Opener, eventually, store_opener

pytestmark = BOTH_BACKENDS

SCHEMA = [
    """
    CREATE TABLE things (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        msat INTEGER NOT NULL CHECK (msat >= 0),
        flag INTEGER NOT NULL DEFAULT 0,
        blob BLOB
    );
    """,
    "ALTER TABLE things ADD COLUMN note TEXT;",
]


@pytest.fixture
def opener(tmp_path: Path, store_backend: str, pg_databases: Databases) -> Iterator[Opener]:
    with store_opener(tmp_path, store_backend, pg_databases, {"test": SCHEMA}) as open_db:
        yield open_db


def test_the_same_sql_gives_the_same_rows(opener: Opener) -> None:
    db = opener()
    with db.transaction() as conn:
        first = conn.execute(
            "INSERT INTO things (name, msat, flag, blob) VALUES (?, ?, ?, ?)",
            ("a", 2**40, True, b"\x00\x01"),
        ).lastrowid
        conn.executemany("INSERT INTO things (name, msat) VALUES (?, ?)", [("b", 1), ("c", 2)])
        cur = conn.execute("UPDATE things SET msat = msat + :n WHERE msat < :n", {"n": 10})
        assert cur.rowcount == 2
        row = conn.execute(
            "UPDATE things SET note = '100%' WHERE id = ? RETURNING id, note", (first,)
        ).fetchone()
        assert tuple(row) == (first, "100%")
    row = db.query_one("SELECT * FROM things WHERE id = ?", (first,))
    assert row is not None
    assert (row["name"], row[2], row["flag"], bytes(row["blob"])) == ("a", 2**40, 1, b"\x00\x01")
    assert dict(row)["note"] == "100%"
    total = db.query_one("SELECT COALESCE(SUM(msat), 0) AS total FROM things")
    assert total is not None and total["total"] == 2**40 + 23 and isinstance(total[0], int)


def test_constraint_violations_roll_back(opener: Opener) -> None:
    db = opener()
    with db.transaction() as conn:
        conn.execute("INSERT INTO things (name, msat) VALUES ('a', 1)")
    for sql in ["INSERT INTO things (name, msat) VALUES ('a', 1)", "UPDATE things SET msat = -1"]:
        with pytest.raises(IntegrityError), db.transaction() as conn:
            conn.execute("INSERT INTO things (name, msat) VALUES ('b', 1)")
            conn.execute(sql)
    assert [r["name"] for r in db.query("SELECT name FROM things")] == ["a"]


def test_a_second_instance_is_alive_until_it_closes(opener: Opener, store_backend: str) -> None:
    first, second = opener(), opener()
    assert first.instance != second.instance
    assert first.instance_alive(first.instance)
    assert second.instance_alive(first.instance) == (store_backend == "postgres")
    first.close()
    eventually(lambda: not second.instance_alive(first.instance))


def test_one_instance_holds_a_singleton_until_it_closes(opener: Opener, store_backend: str) -> None:
    if store_backend == "sqlite":
        pytest.skip("one node per SQLite database: it is always the one")
    first, second = opener(), opener()
    assert first.try_singleton("announcer")
    assert first.try_singleton("announcer")  # still it
    assert not second.try_singleton("announcer")
    first.close()
    eventually(lambda: second.try_singleton("announcer"))
