"""Throwaway PostgreSQL databases for the tests, on the server at 127.0.0.1:5432.

Each test gets databases of its own, `nutgate_test_<random>`, dropped at the end. The
PostgreSQL variants of the tests are skipped, saying why, when no server answers there.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from node.db.open import open_store
from node.db.store import Migrations, Store
from node.money import records
from node.money.ledger import MIGRATIONS as LEDGER

SERVER = os.environ.get("NUTGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
BACKENDS = ["sqlite", "postgres"]


@functools.cache
def unavailable() -> str | None:
    """Why PostgreSQL tests cannot run here, or None."""
    try:
        with psycopg.connect(f"{SERVER}/postgres", connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"no PostgreSQL server at {SERVER} ({str(exc).strip().splitlines()[0]})"


def create_database() -> str:
    name = f"nutgate_test_{secrets.token_hex(6)}"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}".encode())
    return f"{SERVER}/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())


class Databases:
    """Makes databases for one test and drops them all at its end."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def new(self) -> str:
        reason = unavailable()
        if reason:
            pytest.skip(reason)
        self.urls.append(create_database())
        return self.urls[-1]

    def drop_all(self) -> None:
        for url in self.urls:
            drop_database(url)


@pytest.fixture
def pg_databases() -> Iterator[Databases]:
    made = Databases()
    yield made
    made.drop_all()


@pytest.fixture
def store_backend(request: pytest.FixtureRequest) -> str:
    """ "sqlite" unless a module parametrises it: `pytestmark = BOTH_BACKENDS`."""
    return str(getattr(request, "param", "sqlite"))


BOTH_BACKENDS = pytest.mark.parametrize("store_backend", BACKENDS, indirect=True)

Opener = Callable[[], Store]


@contextlib.contextmanager
def store_opener(
    tmp_path: Path, store_backend: str, databases: Databases, migrations: Migrations
) -> Iterator[Opener]:
    """Opens one test database (SQLite or PostgreSQL) again at each call; closes them all."""
    url = databases.new() if store_backend == "postgres" else ""
    opened: list[Store] = []

    def open_db() -> Store:
        opened.append(open_store(url, tmp_path / "db.sqlite3", migrations))
        return opened[-1]

    yield open_db
    for db in opened:
        db.close()


def eventually(check: Callable[[], object], timeout_s: float = 5.0) -> None:
    """PostgreSQL ends a closed connection's session (and drops its locks) a moment later."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def pg(tmp_path: Path, pg_databases: Databases) -> Iterator[Opener]:
    """Opens one PostgreSQL database with the ledger's and the records' tables, again at each
    call (another instance of the node on it)."""
    migrations = {"node": LEDGER, "records": records.MIGRATIONS}
    with store_opener(tmp_path, "postgres", pg_databases, migrations) as open_db:
        yield open_db
