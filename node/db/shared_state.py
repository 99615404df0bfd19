"""State that several node instances on one database must share, kept in that database.

- rate_buckets           the rate limiter's leaky buckets (see node.http.ratelimit), per key.
- admin_login_failures   the admin login throttle's failures and lockout, per address.

With SQLite (one node) both stay in process memory, as before: these tables exist but are
empty. Times here are the wall clock (`time.time()`): monotonic clocks differ between hosts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import orjson

from node.db.store import Store
from node.http.ratelimit import Decision, Window, decide, drained

MIGRATIONS: list[str] = [
    """
    CREATE TABLE rate_buckets (
        key TEXT PRIMARY KEY,
        updated_at REAL NOT NULL,
        fill TEXT NOT NULL
    );
    CREATE INDEX rate_buckets_updated ON rate_buckets(updated_at);
    CREATE TABLE admin_login_failures (
        ip TEXT PRIMARY KEY,
        count INTEGER NOT NULL,
        locked_until REAL NOT NULL
    );
    """,
]

SWEEP_EVERY_S = 60.0
IDLE_AFTER_S = 86400.0  # the longest window drains in a day


class SharedRateStore:
    """The buckets of every instance, one row per key, read and written in one transaction."""

    def __init__(self, windows: Sequence[Window], db: Store) -> None:
        if not windows:
            raise ValueError("at least one window is needed")
        self.windows = list(windows)
        self.db = db
        self._swept = 0.0

    def hit(self, key: str, now: float) -> Decision:
        with self.db.transaction() as conn:
            if now - self._swept >= SWEEP_EVERY_S:
                self._swept = now
                conn.execute("DELETE FROM rate_buckets WHERE updated_at < ?", (now - IDLE_AFTER_S,))
            row = conn.execute(
                "SELECT updated_at, fill FROM rate_buckets WHERE key = ?", (key,)
            ).fetchone()
            fill = [0.0] * len(self.windows)
            if row is not None and len(orjson.loads(row["fill"])) == len(fill):
                fill = drained(self.windows, orjson.loads(row["fill"]), now - row["updated_at"])
            decision, fill = decide(self.windows, fill)
            conn.execute(
                "INSERT INTO rate_buckets (key, updated_at, fill) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET updated_at = excluded.updated_at,"
                " fill = excluded.fill",
                (key, now, orjson.dumps(fill).decode()),
            )
        return decision


class SharedFailures:
    """The admin login throttle's failures (node.admin.auth.Failures), counted for every
    instance, so guessing on one instance counts on all."""

    def __init__(self, db: Store) -> None:
        self.db = db

    def locked_until(self, ip: str) -> float:
        row = self.db.query_one("SELECT locked_until FROM admin_login_failures WHERE ip = ?", (ip,))
        return 0.0 if row is None else float(row["locked_until"])

    def add(self, ip: str, now: float, lockout: Callable[[int], float]) -> None:
        with self.db.transaction() as conn:
            row = conn.execute(
                "INSERT INTO admin_login_failures (ip, count, locked_until) VALUES (?, 1, 0)"
                " ON CONFLICT (ip) DO UPDATE SET count = admin_login_failures.count + 1"
                " RETURNING count",
                (ip,),
            ).fetchone()
            if wait := lockout(int(row["count"])):
                conn.execute(
                    "UPDATE admin_login_failures SET locked_until = ? WHERE ip = ?",
                    (now + wait, ip),
                )

    def forget(self, ip: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM admin_login_failures WHERE ip = ?", (ip,))
