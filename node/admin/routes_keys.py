"""/admin/api keys and requests: each account's request records and keys (its own rules and
its sub-keys, with their spend); the operator creates a key funded with operator credit
(spend-only, never paid out), adds credit, sets any key's limits and expiry, or revokes it."""

from __future__ import annotations

import secrets
import time
from typing import Any

from aiohttp import web

from node.admin.http import guarded, id_number, int_query, parts_of
from node.errors import BadRequest, NotFound
from node.http.credentials import idempotency_key
from node.http.web import json_response, read_json
from node.money.keys import SUBKEY, KeyRules, Rules
from node.money.ledger import GRANT, hash_key
from node.parts import Parts
from node.routes.rules import parse_rules, whole

routes = web.RouteTableDef()

MAX_PAGE = 200
# Operator credit of all accounts together: far beyond any real use, and low enough that every
# sum of balances (money pages, audit, metrics) stays a 64-bit integer with all the ecash there
# could be beside it (21 million BTC: 2.1e18 msat).
MAX_CREDIT_TOTAL_MSAT = 2**61


def _account_id(request: web.Request) -> int:
    return id_number(request.match_info["id"].removeprefix("key_"), "id", "the account id")


def _key(parts: Parts, account_id: int) -> KeyRules:
    """A key's rules, made empty for a key that had none (an account that is a key)."""
    if parts.ledger.account_row(account_id) is None:
        raise NotFound("no account with this id", code="account_not_found")
    key = parts.keys.get(account_id)
    if key is None:
        parts.keys.set_rules(account_id, Rules())
        key = parts.keys.get(account_id)
    assert key is not None
    return key


def _credit_room(parts: Parts, amount_msat: int, param: str) -> None:
    if parts.ledger.balances().credit_msat + amount_msat > MAX_CREDIT_TOTAL_MSAT:
        raise BadRequest(
            f"{param} would take the operator credit of all accounts past 2^61 msat", param=param
        )


def _described(parts: Parts, key: KeyRules) -> dict[str, Any]:
    now = int(time.time())
    return {"account_id": key.account_id, **key.to_json(parts.keys.spent(key, now), now)}


@routes.get("/admin/api/accounts/{id}/requests")
@guarded
async def requests(request: web.Request) -> web.Response:
    parts, account_id = parts_of(request), _account_id(request)
    limit = int_query(request, "limit", 50, 1, MAX_PAGE)
    rows, more = parts.records.page([account_id], limit, request.query.get("before") or None)
    data = [{**r.to_json(), "key_id": r.key_id} for r in rows]
    last = rows[-1].request_id if more and rows else None
    return json_response({"object": "list", "data": data, "has_more": more, "next_before": last})


@routes.get("/admin/api/accounts/{id}/keys")
@guarded
async def keys(request: web.Request) -> web.Response:
    parts, account_id = parts_of(request), _account_id(request)
    if parts.ledger.account_row(account_id) is None:
        raise NotFound("no account with this id", code="account_not_found")
    own = parts.keys.get(account_id)
    children = parts.keys.children(account_id)
    return json_response(
        {
            "account_id": account_id,
            "rules": _described(parts, own) if own is not None else None,
            "sub_keys": [_described(parts, k) for k in children],
        }
    )


@routes.post("/admin/api/keys")
@guarded
async def create(request: web.Request) -> web.Response:
    """A new `sk-` key holding `credit_msat` of operator credit, with the rules the body sets.
    The key is in this answer only: the node keeps its hash."""
    body, _ = await read_json(request)
    parts = parts_of(request)
    credit = whole(body, "credit_msat") or 0
    rules = Rules(**parse_rules(body))
    _credit_room(parts, credit, "credit_msat")
    key = "sk-" + secrets.token_urlsafe(32)
    account_id = parts.ledger.grant(hash_key(key), credit, "operator:admin")
    parts.keys.set_rules(account_id, rules)
    made = parts.keys.get(account_id)
    assert made is not None
    return json_response({"key": key, **_described(parts, made)}, status=201)


@routes.post("/admin/api/keys/{id}/credit")
@guarded
async def fund(request: web.Request) -> web.Response:
    """Add operator credit (spend-only) to an account; once per Idempotency-Key."""
    body, _ = await read_json(request)
    parts, account_id = parts_of(request), _account_id(request)
    amount = whole(body, "amount_msat", least=1)
    if amount is None:
        raise BadRequest("amount_msat is required: msat, at least 1", param="amount_msat")
    row = parts.ledger.account_row(account_id)
    if row is None:
        raise NotFound("no account with this id", code="account_not_found")
    if int(row["balance_msat"]) + amount >= 2**62:  # far beyond any real balance
        raise BadRequest("amount_msat would take the balance past 2^62 msat", param="amount_msat")
    if row["kind"] == SUBKEY:
        raise BadRequest("a sub-key spends its parent's balance: fund the parent", param="id")
    _credit_room(parts, amount, "amount_msat")
    key, _ = idempotency_key(request)
    credited = parts.ledger.fund(account_id, amount, f"operator:{GRANT}:{key}")
    account = parts.ledger.get(account_id)
    return json_response(
        {
            "account_id": account_id,
            "credited": credited,
            "balance_msat": account.balance_msat,
            "credit_msat": account.credit_msat,
        }
    )


@routes.patch("/admin/api/keys/{id}")
@guarded
async def change(request: web.Request) -> web.Response:
    body, _ = await read_json(request)
    parts = parts_of(request)
    found = parse_rules(body)
    key = parts.keys.update(_key(parts, _account_id(request)), **found)
    return json_response(_described(parts, key))


@routes.post("/admin/api/keys/{id}/revoke")
@guarded
async def revoke(request: web.Request) -> web.Response:
    parts = parts_of(request)
    key = _key(parts, _account_id(request))
    parts.keys.revoke(key)
    revoked = parts.keys.get(key.account_id)
    assert revoked is not None
    return json_response(_described(parts, revoked))
