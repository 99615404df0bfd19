"""/admin/api/requests: the request records across accounts, filtered by account (a key and its
sub-keys), model and status, with a per-model breakdown; and the same rows as CSV. A record
holds what a request cost and used, never what it said."""

from __future__ import annotations

import csv
import io
from typing import Any

from aiohttp import web

from node.admin.http import guarded, id_number, int_query, parts_of
from node.errors import BadRequest
from node.http.web import json_response
from node.money.records import MAX_PAGE, STATUSES, Filter, Record

routes = web.RouteTableDef()

CSV_PAGE = 500
CSV_COLUMNS = (
    "request_id",
    "created_at",
    "account_id",
    "key_id",
    "route",
    "model",
    "upstream",
    "status",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost_msat",
    "upstream_cost_msat",
    "duration_ms",
)


def _filter(request: web.Request) -> Filter:
    query = request.query
    account_id = None
    raw = query.get("account_id", "").removeprefix("key_")
    if raw:
        account_id = id_number(raw, "account_id", "account_id")
    model = query.get("model") or None
    if model is not None and len(model) > 200:
        raise BadRequest("model is at most 200 characters", param="model")
    status = query.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}", param="status")
    return Filter(account_id, model, status)


def _row(record: Record) -> dict[str, Any]:
    ids = {"account_id": record.account_id, "key_id": record.key_id}
    return {**record.to_json(), **ids, "upstream_cost_msat": record.upstream_cost_msat}


@routes.get("/admin/api/requests")
@guarded
async def listing(request: web.Request) -> web.Response:
    records, found = parts_of(request).records, _filter(request)
    limit = int_query(request, "limit", 50, 1, MAX_PAGE)
    rows, more = records.search(found, limit, request.query.get("before") or None)
    return json_response(
        {
            "object": "list",
            "data": [_row(r) for r in rows],
            "has_more": more,
            "next_before": rows[-1].request_id if more and rows else None,
            "by_model": records.by_model(found),
        }
    )


def _cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula is quoted as text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


@routes.get("/admin/api/requests.csv")
@guarded
async def export(request: web.Request) -> web.StreamResponse:
    records, found = parts_of(request).records, _filter(request)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": 'attachment; filename="nutgate-requests.csv"',
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(request)
    before: str | None = None
    header = True
    while True:  # page by page: memory bounded by a page, whatever the history holds
        rows, more = records.search(found, CSV_PAGE, before)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        if header:
            writer.writerow(CSV_COLUMNS)
            header = False
        for record in rows:
            data = _row(record)
            writer.writerow([_cell(data[c]) for c in CSV_COLUMNS])
        await response.write(out.getvalue().encode())
        if not more or not rows:
            break
        before = rows[-1].request_id
    await response.write_eof()
    return response
