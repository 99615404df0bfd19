"""A record per paid request: what it cost and what it used, never what it said.

The one owner of `request_records`. A record holds the request id, when it started, its route,
model and upstream, its token counts, its cost and status and how long it took: no prompt, no
answer, no client address. It is written by the settlement's own write (`Ledger.settle`'s
`also`), so a request is charged and recorded together or neither; a request whose node died
is recorded when its reservation is settled as an orphan. Records are kept `history_days`
(0: none is written) and purged by `purge` in the background.

Read by the key's holder (usage totals and rows, a page of records, one record) and by the
operator's admin; the account ids given are those whose requests the reader may see.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from node.db.store import Store
from node.money.ledger import Orphan
from node.money.ledger_pg import Settling
from wallet.store import Connection

MIGRATIONS = [
    """
    CREATE TABLE request_records (
        id INTEGER PRIMARY KEY,
        request_id TEXT NOT NULL UNIQUE,
        account_id INTEGER NOT NULL,
        key_id INTEGER,
        created_at INTEGER NOT NULL,
        route TEXT NOT NULL,
        model TEXT NOT NULL,
        upstream TEXT NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cached_tokens INTEGER NOT NULL,
        reasoning_tokens INTEGER NOT NULL,
        cost_msat INTEGER NOT NULL,
        status TEXT NOT NULL,
        duration_ms INTEGER NOT NULL
    );
    CREATE INDEX request_records_account ON request_records(account_id, created_at);
    CREATE INDEX request_records_key ON request_records(key_id, created_at);
    CREATE INDEX request_records_created ON request_records(created_at);
    """,
    # What the upstream billed, at the node's rate (see Records.coster); 0 for older rows.
    "ALTER TABLE request_records ADD COLUMN upstream_cost_msat INTEGER NOT NULL DEFAULT 0;",
]

log = logging.getLogger(__name__)

DAY_S = 86_400
MAX_PAGE = 200
_COLUMNS = (
    "request_id, account_id, key_id, created_at, route, model, upstream, prompt_tokens,"
    " completion_tokens, cached_tokens, reasoning_tokens, cost_msat, status, duration_ms,"
    " upstream_cost_msat"
)
_INSERT = (
    f"INSERT INTO request_records ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_GROUPS = {"day": f"(created_at / {DAY_S}) * {DAY_S}", "model": "model"}

# statuses
OK = "ok"  # answered in full
INCOMPLETE = "incomplete"  # the answer was cut: the client went away, the upstream broke
FAILED = "failed"  # no answer; charged what the upstream may bill for the attempts
INTERRUPTED = "interrupted"  # the node stopped mid-request: charged the prompt's cost


class Record(NamedTuple):  # a tuple: made at C speed, and its row as it is
    request_id: str
    account_id: int
    key_id: int | None
    created_at: int
    route: str
    model: str
    upstream: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost_msat: int
    status: str
    duration_ms: int
    upstream_cost_msat: int = 0  # set by Records.write from its coster

    def to_json(self) -> dict[str, Any]:
        data = self._asdict()
        del data["account_id"], data["key_id"]  # the reader knows whose they are
        del data["upstream_cost_msat"]  # the operator's business: shown in /admin only
        return data


# Records.write writes a record as the row it is: its fields in the columns' order
assert list(Record._fields) == [c.strip() for c in _COLUMNS.split(",")]

RECORDED = "settle-recorded"  # the crash tests' checkpoint: record written, not committed


class Records:
    def __init__(
        self, db: Store, history_days: int, checkpoint: Callable[[str], None] | None = None
    ) -> None:
        self.db = db
        self.history_days = history_days
        self.checkpoint = checkpoint  # the crash tests' seam (tests/support/crash_serve.py)
        # What the upstream billed for a record's request (node.parts sets it: it needs the
        # catalogue and the rate, which the ledger knows nothing of).
        self.coster: Callable[[Record], int] | None = None

    def write(self, conn: Connection, record: Record) -> None:
        """Inside the settlement's transaction; nothing when history is off."""
        if self.history_days <= 0:
            return
        if self.coster is not None and not record.upstream_cost_msat:
            record = record._replace(upstream_cost_msat=self._upstream_cost(record))
        if isinstance(conn, Settling):  # sent with its settlement (PostgreSQL)
            conn.insert("request_records", record._asdict(), charged="cost_msat")
        else:
            conn.execute(_INSERT, record)
        if self.checkpoint is not None:
            self.checkpoint(RECORDED)

    def _upstream_cost(self, record: Record) -> int:
        assert self.coster is not None
        try:
            return max(0, self.coster(record))
        except Exception:  # a report's figure must never undo the settlement it rides in
            log.exception("request %s: upstream cost not computed", record.request_id)
            return 0

    def orphan(self, conn: Connection, orphan: Orphan, charged_msat: int) -> None:
        """The record of a request whose node stopped mid-way (see Ledger.resolve_orphans)."""
        took = max(0, int(time.time()) - orphan.created_at) * 1000
        self.write(
            conn,
            Record(
                orphan.reservation_id,
                orphan.account_id,
                orphan.key_id,
                orphan.created_at,
                "",
                orphan.model or "",
                "",
                0,
                0,
                0,
                0,
                charged_msat,
                INTERRUPTED,
                took,
            ),
        )

    def purge(self, now: float | None = None) -> int:
        """Delete the records older than the retention (all of them when it is 0)."""
        cutoff = int(now if now is not None else time.time()) - self.history_days * DAY_S
        with self.db.transaction() as conn:
            cur = conn.execute("DELETE FROM request_records WHERE created_at < ?", (cutoff,))
        return max(0, cur.rowcount)

    def one(self, account_ids: list[int], request_id: str) -> Record | None:
        where, params = _owned(account_ids)
        row = self.db.query_one(
            f"SELECT {_COLUMNS} FROM request_records WHERE request_id = ? AND {where}",
            [request_id, *params],
        )
        return Record(**dict(row)) if row else None

    def page(
        self, account_ids: list[int], limit: int, before: str | None = None
    ) -> tuple[list[Record], bool]:
        """Newest first, at most `limit`, older than the record `before`; (rows, more)."""
        where, params = _owned(account_ids)
        if before is not None:
            where += " AND id < COALESCE((SELECT id FROM request_records WHERE request_id = ?), 0)"
            params.append(before)
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM request_records WHERE {where} ORDER BY id DESC LIMIT ?",
            [*params, min(limit, MAX_PAGE) + 1],
        )
        records = [Record(**dict(r)) for r in rows]
        return records[:limit], len(records) > limit

    def usage(
        self, account_ids: list[int], since: int, until: int, group_by: str | None
    ) -> dict[str, Any]:
        """Totals over [since, until) and, grouped by day or model, one row per group."""
        where, params = _owned(account_ids)
        where += " AND created_at >= ? AND created_at < ?"
        params += [since, until]
        sums = (
            "COUNT(*) AS requests, COALESCE(SUM(cost_msat), 0) AS cost_msat,"
            " COALESCE(SUM(prompt_tokens), 0) AS prompt_tokens,"
            " COALESCE(SUM(completion_tokens), 0) AS completion_tokens,"
            " COALESCE(SUM(cached_tokens), 0) AS cached_tokens,"
            " COALESCE(SUM(reasoning_tokens), 0) AS reasoning_tokens"
        )
        total = self.db.query_one(f"SELECT {sums} FROM request_records WHERE {where}", params)
        assert total is not None
        rows: list[dict[str, Any]] = []
        if group_by is not None:
            group = _GROUPS[group_by]
            found = self.db.query(
                f"SELECT {group} AS grp, {sums} FROM request_records WHERE {where}"
                f" GROUP BY {group} ORDER BY {group}",
                params,
            )
            rows = [{group_by: r["grp"], **_sums(r)} for r in found]
        return {"totals": _sums(total), "data": rows}

    def search(
        self, found: Filter, limit: int, before: str | None = None
    ) -> tuple[list[Record], bool]:
        """The operator's view across accounts: newest first, filtered; (rows, more)."""
        where, params = found.where()
        if before is not None:
            where += " AND id < COALESCE((SELECT id FROM request_records WHERE request_id = ?), 0)"
            params.append(before)
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM request_records WHERE {where} ORDER BY id DESC LIMIT ?",
            [*params, limit + 1],
        )
        records = [Record(**dict(r)) for r in rows]
        return records[:limit], len(records) > limit

    def by_model(self, found: Filter) -> list[dict[str, Any]]:
        """Requests, cost and tokens per model, over the records the filter keeps."""
        where, params = found.where()
        rows = self.db.query(
            "SELECT model, COUNT(*) AS requests, COALESCE(SUM(cost_msat), 0) AS cost_msat,"
            " COALESCE(SUM(prompt_tokens), 0) AS prompt_tokens,"
            " COALESCE(SUM(completion_tokens), 0) AS completion_tokens"
            f" FROM request_records WHERE {where} GROUP BY model ORDER BY cost_msat DESC, model",
            params,
        )
        return [dict(r) for r in rows]

    def per_model(self, since: int) -> list[dict[str, Any]]:
        """The dashboard's table: per model since `since`, its requests, those that ended in
        an error status (not ok), the revenue charged and what the upstreams billed."""
        rows = self.db.query(
            "SELECT model, COUNT(*) AS requests,"
            " COALESCE(SUM(CASE WHEN status <> ? THEN 1 ELSE 0 END), 0) AS errors,"
            " COALESCE(SUM(cost_msat), 0) AS revenue_msat,"
            " COALESCE(SUM(upstream_cost_msat), 0) AS upstream_cost_msat"
            " FROM request_records WHERE created_at >= ?"
            " GROUP BY model ORDER BY revenue_msat DESC, model",
            [OK, since],
        )
        return [{k: (v if k == "model" else int(v)) for k, v in dict(r).items()} for r in rows]

    def spent_by_key(self, key_ids: list[int]) -> dict[int, int]:
        """What each key's kept records cost (for the admin)."""
        if not key_ids:
            return {}
        marks = ", ".join("?" * len(key_ids))
        rows = self.db.query(
            "SELECT key_id, COALESCE(SUM(cost_msat), 0) AS spent FROM request_records"
            f" WHERE key_id IN ({marks}) GROUP BY key_id",
            key_ids,
        )
        return {int(r["key_id"]): int(r["spent"]) for r in rows}


@dataclass(frozen=True)
class Filter:
    """The admin's filter: one account (its own requests and its sub-keys'), model, status."""

    account_id: int | None = None
    model: str | None = None
    status: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        where, params = "1 = 1", list[Any]()
        if self.account_id is not None:
            where, params = _owned([self.account_id])
        if self.model is not None:
            where += " AND model = ?"
            params.append(self.model)
        if self.status is not None:
            where += " AND status = ?"
            params.append(self.status)
        return where, params


STATUSES = (OK, INCOMPLETE, FAILED, INTERRUPTED)


def _owned(account_ids: list[int]) -> tuple[str, list[Any]]:
    """Records of the given accounts: paid by one of them, or made with one as the key."""
    if not account_ids:
        return "1 = 0", []
    marks = ", ".join("?" * len(account_ids))
    return f"(account_id IN ({marks}) OR key_id IN ({marks}))", [*account_ids, *account_ids]


def _sums(row: Any) -> dict[str, int]:
    names = (
        "requests",
        "cost_msat",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "reasoning_tokens",
    )
    return {name: int(row[name]) for name in names}
