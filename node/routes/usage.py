"""What a key's holder can learn: usage, the key itself, its balance, its money's history,
and each paid request's record (node.money.records: never a prompt or an answer).

    GET /v1/usage?from=&to=&group_by=day|model   totals and rows over a time range
    GET /v1/me                                   the key: kind, balance, limits, expiry, use
    GET /v1/balance                              the balance (with spend, as Botech's)
    GET /v1/balance/history                      ecash in and out (routstr-core's shape)
    GET /v1/requests?limit=&before=              records, newest first, cursor-paged
    GET /v1/requests/{request_id}                one record

The Bearer key (or the X-Cashu payment) asks; a sub-key sees its own requests, its parent
sees every request paid from its balance.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from node.errors import BadRequest, Forbidden, NotFound
from node.http.web import digits, json_response
from node.money.ledger import DEPOSIT, GRANT, PAYOUT_FEE, REFUND, WITHDRAW
from node.money.payments import Payer
from node.parts import PARTS, Parts
from node.routes.holders import holder
from node.routes.wallet import balance_of

routes = web.RouteTableDef()

MONTH_S = 30 * 86_400
DEFAULT_PAGE = 20
MAX_PAGE = 200


def _time(value: str | None, name: str, default: int) -> int:
    """Unix seconds, or an ISO 8601 date or time (UTC unless it says otherwise)."""
    if value is None or not value.strip():
        return default
    value = value.strip()
    if (seconds := digits(value, 17)) is not None:
        return seconds
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(
            f"{name} must be unix seconds or an ISO 8601 date, e.g. 2026-01-31", param=name
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _int(value: str | None, name: str, default: int, most: int) -> int:
    if value is None:
        return default
    number = digits(value, 18)
    if number is None or not 1 <= number <= most:
        raise BadRequest(f"{name} must be a whole number from 1 to {most}", param=name)
    return number


def seen_by(payer: Payer) -> list[int]:
    """The accounts whose records the holder may read (see Records._owned)."""
    return [payer.owner_id]


@routes.get("/v1/usage")
async def usage(request: web.Request) -> web.Response:
    parts, payer = request.app[PARTS], await holder(request)
    now = int(time.time())
    since = _time(request.query.get("from"), "from", 0)
    until = _time(request.query.get("to"), "to", now + 1)
    group_by = request.query.get("group_by") or None
    if group_by not in (None, "day", "model"):
        raise BadRequest("group_by must be day or model", param="group_by")
    found = parts.records.usage(seen_by(payer), since, until, group_by)
    return json_response(
        {"object": "usage", "from": since, "to": until, "group_by": group_by, **found}
    )


def _spend(parts: Parts, payer: Payer, now: int) -> dict[str, Any]:
    ids = seen_by(payer)
    total = parts.records.usage(ids, 0, now + 1, None)["totals"]
    month = parts.records.usage(ids, now - MONTH_S, now + 1, None)["totals"]
    return {
        "requestsTotal": total["requests"],
        "spendTotalMsat": total["cost_msat"],
        "spendMonthMsat": month["cost_msat"],
    }


def _limits(parts: Parts, payer: Payer, now: int) -> dict[str, Any]:
    key = payer.key
    if key is None:
        return {"spend_limit_msat": None, "limit_period": None, "expires_at": None}
    described = key.to_json(parts.keys.spent(key, now), now)
    del described["object"], described["kind"]
    return described


@routes.get("/v1/me")
async def me(request: web.Request) -> web.Response:
    parts, payer = request.app[PARTS], await holder(request)
    now = int(time.time())
    own = parts.ledger.get(payer.owner_id)
    row = parts.ledger.account_row(payer.owner_id) or {}
    created, last_used = row.get("created_at"), row.get("last_used_at")
    kind = "subkey" if payer.owner_id != payer.account_id else own.kind
    expires = payer.key.rules.expires_at if payer.key is not None else None
    return json_response(
        {
            "object": "me",
            "kind": kind,
            **balance_of(parts, payer, now),
            **_limits(parts, payer, now),
            "expired": expires is not None and now >= expires,
            "created_at": created,
            "last_used_at": last_used,
            "usage": _spend(parts, payer, now),
        }
    )


@routes.get("/v1/balance")
async def balance(request: web.Request) -> web.Response:
    parts, payer = request.app[PARTS], await holder(request)
    now = int(time.time())
    spend = _spend(parts, payer, now)
    return json_response(
        {
            **balance_of(parts, payer, now),
            "spend_total_msat": spend["spendTotalMsat"],
            "spend_month_msat": spend["spendMonthMsat"],
        }
    )


@routes.get("/v1/requests")
async def requests(request: web.Request) -> web.Response:
    parts, payer = request.app[PARTS], await holder(request)
    limit = _int(request.query.get("limit"), "limit", DEFAULT_PAGE, MAX_PAGE)
    before = request.query.get("before") or None
    rows, more = parts.records.page(seen_by(payer), limit, before)
    return json_response(
        {
            "object": "list",
            "data": [r.to_json() for r in rows],
            "has_more": more,
            "next_before": rows[-1].request_id if more and rows else None,
        }
    )


@routes.get("/v1/requests/{request_id}")
async def one_request(request: web.Request) -> web.Response:
    parts, payer = request.app[PARTS], await holder(request)
    record = parts.records.one(seen_by(payer), request.match_info["request_id"])
    if record is None:
        raise NotFound(
            "no record of this request for this key (unknown, not kept, or another key's)",
            code="request_not_found",
        )
    return json_response({"object": "request", **record.to_json()})


_MOVES = {  # entry kind -> (routstr-core's type, source)
    DEPOSIT: ("in", "cashu"),
    GRANT: ("in", "operator"),
    REFUND: ("in", "refund"),
    WITHDRAW: ("out", "cashu"),
    PAYOUT_FEE: ("out", "payout_fee"),
}
HISTORY_MAX = 500


@routes.get("/v1/balance/history")
@routes.get("/v1/wallet/history")
async def history(request: web.Request) -> web.Response:
    """Ecash in and out of the key's account, newest first (the requests' charges are in
    /v1/requests): routstr-core's `{"transactions": [...]}`, amounts in sat and msat."""
    parts, payer = request.app[PARTS], await holder(request)
    if payer.owner_id != payer.account_id:
        raise Forbidden(
            "a sub-key has no money of its own: its parent's history is the parent's to see",
            code="subkey_not_allowed",
        )
    mint = parts.ledger.get(payer.account_id).mint
    moves = parts.ledger.moves_page(payer.account_id, HISTORY_MAX)
    transactions = [
        {
            "id": move["id"],
            "type": _MOVES.get(move["kind"], ("in", move["kind"]))[0],
            "source": _MOVES.get(move["kind"], ("in", move["kind"]))[1],
            "amount": abs(move["amount_msat"]) // 1000,
            "amount_msat": abs(move["amount_msat"]),
            "unit": "sat",
            "mint_url": mint,
            "created_at": move["created_at"],
            "collected": True,
            "swept": False,
        }
        for move in moves
    ]
    return json_response({"transactions": transactions})
