"""The admin's tables (series "admin" in the node's database).

- admin_secrets    small named secrets: the password's scrypt hash, the CSRF key, the hash of
                   the file's password last seeded (so a new one in the file takes over).
- admin_sessions   sessions by the SHA-256 of their cookie value, with an absolute expiry.
- admin_settings   the operator's overrides of the configuration file, one row per section:
                   a partial object for a table section, the whole list for upstreams/models.
- admin_collected  earnings payouts (wallet_payouts ids) whose token the operator has marked
                   collected: the page stops showing their token.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from node.db.store import Store

MIGRATIONS: list[str] = [
    """
    CREATE TABLE admin_secrets (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE admin_sessions (
        id_hash TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        ip TEXT
    );
    CREATE TABLE admin_settings (
        section TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    );
    """,
    """
    CREATE TABLE admin_collected (
        payout_id INTEGER PRIMARY KEY,
        collected_at INTEGER NOT NULL
    );
    """,
]


def get_secret(db: Store, name: str) -> str | None:
    row = db.query_one("SELECT value FROM admin_secrets WHERE name = ?", (name,))
    return None if row is None else str(row["value"])


def set_secret(db: Store, name: str, value: str) -> None:
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO admin_secrets (name, value, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET value = excluded.value,"
            " updated_at = excluded.updated_at",
            (name, value, int(time.time())),
        )


def load_overrides(db: Store) -> dict[str, Any]:
    rows = db.query("SELECT section, value FROM admin_settings ORDER BY section")
    return {row["section"]: orjson.loads(row["value"]) for row in rows}


def save_overrides(db: Store, overrides: dict[str, Any]) -> None:
    """Replace the stored overrides of the sections given (others are left as they are)."""
    now = int(time.time())
    with db.transaction() as conn:
        for section, value in overrides.items():
            conn.execute(
                "INSERT INTO admin_settings (section, value, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT(section) DO UPDATE SET value = excluded.value,"
                " updated_at = excluded.updated_at",
                (section, orjson.dumps(value).decode(), now),
            )


def collected(db: Store) -> set[int]:
    return {int(row["payout_id"]) for row in db.query("SELECT payout_id FROM admin_collected")}


def mark_collected(db: Store, payout_id: int) -> None:
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO admin_collected (payout_id, collected_at) VALUES (?, ?)"
            " ON CONFLICT(payout_id) DO NOTHING",
            (payout_id, int(time.time())),
        )
