"""Opening the store a configuration asks for: PostgreSQL for a postgresql:// URL, else SQLite.

The one place that knows both stores; psycopg is imported only when PostgreSQL is used.
"""

from __future__ import annotations

from pathlib import Path

from node.db.sqlite import SqliteStore
from node.db.store import Migrations, Store

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_store(
    url: str, path: Path, migrations: Migrations, *, durability: str = "normal"
) -> Store:
    """PostgreSQL for a postgresql:// URL; otherwise SQLite at `path`."""
    if url.startswith(POSTGRES_SCHEMES):
        from node.db.postgres import PostgresStore  # psycopg is loaded only when used

        return PostgresStore(url, migrations)
    return SqliteStore(path, migrations, durability=durability)
