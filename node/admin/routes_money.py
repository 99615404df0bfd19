"""/admin/api money: accounts, entries, solvency, the audit, earnings, dashboard series."""

from __future__ import annotations

from aiohttp import web

from node.admin import money, stats
from node.admin.http import guarded, id_number, int_query, parts_of
from node.http.credentials import idempotency_key
from node.http.web import json_response, read_json
from node.routes.payouts import payout_in_doubt

routes = web.RouteTableDef()


@routes.get("/admin/api/accounts")
@guarded
async def accounts(request: web.Request) -> web.Response:
    limit = int_query(request, "limit", 100, 1, money.MAX_PAGE)
    offset = int_query(request, "offset", 0, 0, 2**62)
    return json_response(money.accounts(parts_of(request), limit, offset))


@routes.get("/admin/api/accounts/{id}/entries")
@guarded
async def entries(request: web.Request) -> web.Response:
    account_id = id_number(request.match_info["id"], "id", "the account id")
    limit = int_query(request, "limit", 200, 1, money.MAX_PAGE)
    return json_response(money.entries(parts_of(request), account_id, limit))


@routes.get("/admin/api/money")
@guarded
async def solvency(request: web.Request) -> web.Response:
    return json_response(money.solvency(parts_of(request)))


@routes.get("/admin/api/audit")
@guarded
async def audit(request: web.Request) -> web.Response:
    return json_response(await money.audit(parts_of(request)))


@routes.get("/admin/api/earnings")
@guarded
async def earnings(request: web.Request) -> web.Response:
    parts = parts_of(request)
    return json_response({**money.solvency(parts), "payouts": money.payouts(parts)})


@routes.post("/admin/api/earnings/withdraw")
@guarded
async def withdraw(request: web.Request) -> web.Response:
    body, _ = await read_json(request)
    parts = parts_of(request)
    key, made = idempotency_key(request)  # as /v1/wallet/withdraw: a retry gets the same token
    with payout_in_doubt(made):
        if "invoice" in body or "lightning_address" in body:  # paid by Lightning
            return json_response(await money.earnings_to_lightning(parts, body, key))
        paid = await money.withdraw_earnings(parts, body.get("amount"), body.get("mint"), key)
    return json_response(paid)


@routes.post("/admin/api/earnings/payouts/{id}/collected")
@guarded
async def collected(request: web.Request) -> web.Response:
    payout_id = id_number(request.match_info["id"], "id", "the payout id")
    money.mark_collected(parts_of(request), payout_id)
    return json_response({"ok": True})


@routes.get("/admin/api/stats")
@guarded
async def series(request: web.Request) -> web.Response:
    hours = int_query(request, "hours", 24, 1, 24 * 366)
    bucket_s = int_query(request, "bucket_s", 3600, 60, 86400 * 7)
    parts = parts_of(request)
    answer = stats.series(parts, hours, bucket_s)
    answer.update(stats.per_model(parts, hours), btc_rate=stats.btc_rate(parts))
    return json_response(answer)
