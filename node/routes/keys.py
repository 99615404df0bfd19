"""Sub-keys: capped keys drawing on the caller's balance, for an agent or a teammate.

    POST   /v1/keys {"name", "spend_limit_msat", "limit_period", "expires_at", "models",
                     "per_minute"}                       -> {"api_key", "id", …}
    GET    /v1/keys                                      -> each sub-key and its spend
    PATCH  /v1/keys/{id}                                 -> its rules changed
    DELETE /v1/keys/{id}                                 -> revoked, at once
    POST   /v1/balance/child-key {"count", "balance_limit", "balance_limit_reset",
                                  "validity_date"}       -> routstr-core's {"api_keys", …}
    POST   /v1/balance/child-key/reset {"child_key"}     -> its spending counted from now

Only a key that owns its balance makes sub-keys (a sub-key cannot). The rules' meaning is in
node.money.keys.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from node.errors import BadRequest, Forbidden, NotFound, Unauthorized
from node.http.credentials import account_by_secret, bearer
from node.http.web import digits, json_response, read_json
from node.money.keys import KeyRules, Rules
from node.money.ledger import hash_key
from node.money.payments import Payer, is_token
from node.parts import PARTS, Parts
from node.routes.holders import holder
from node.routes.rules import moment, parse_rules, period, whole

routes = web.RouteTableDef()

MAX_CHILDREN = 50  # per call, as routstr-core


def _caller_first(request: web.Request) -> None:
    """Before a body is read: refuse a caller with no key, or with an sk- key that opens no
    account, so that nobody who cannot make keys has the node wait for or hold a body. (A
    token is redeemed only by `_parent`, once the body has proved good: bad input changes
    nothing.)"""
    key = bearer(request)
    if key is None:
        raise Unauthorized("send 'Authorization: Bearer sk-…' (or the Cashu token used as key)")
    ledger = request.app[PARTS].ledger
    if not is_token(key) and account_by_secret(request, ledger, key)[1] is None:
        raise Unauthorized("unknown API key")


async def _parent(request: web.Request) -> Payer:
    payer = await holder(request)
    if payer.owner_id != payer.account_id or request.headers.get("X-Cashu", "").strip():
        raise Forbidden(
            "only a key that owns its balance can make or manage sub-keys",
            code="subkey_not_allowed",
        )
    own = request.app[PARTS].keys.get(payer.account_id)
    refusal = own.refusal(int(time.time()), None) if own is not None else None
    if refusal is not None:  # revoked or expired: it spends nothing, and makes no keys
        raise refusal
    return payer


def _child(parts: Parts, payer: Payer, public_id: str) -> KeyRules:
    number = digits(public_id.removeprefix("key_"), 17)
    key = parts.keys.get(number) if number is not None else None
    if key is None or key.parent_id != payer.account_id:
        raise NotFound("no sub-key with this id", code="key_not_found")
    return key


def _described(parts: Parts, key: KeyRules) -> dict[str, Any]:
    now = int(time.time())
    return key.to_json(parts.keys.spent(key, now), now)


@routes.post("/v1/keys")
async def create(request: web.Request) -> web.Response:
    _caller_first(request)
    body, _ = await read_json(request)
    rules = Rules(**parse_rules(body))  # before `_parent`, which may redeem a token
    parts, payer = request.app[PARTS], await _parent(request)
    ((key, account_id),) = parts.keys.create_child(payer.account_id, rules)
    made = parts.keys.get(account_id)
    assert made is not None
    return json_response({"api_key": key, **_described(parts, made)}, status=201)


@routes.get("/v1/keys")
async def listing(request: web.Request) -> web.Response:
    parts, payer = request.app[PARTS], await _parent(request)
    keys = parts.keys.children(payer.account_id)
    return json_response({"object": "list", "data": [_described(parts, k) for k in keys]})


@routes.get("/v1/keys/{key_id}")
async def one(request: web.Request) -> web.Response:
    parts, payer = request.app[PARTS], await _parent(request)
    return json_response(_described(parts, _child(parts, payer, request.match_info["key_id"])))


@routes.patch("/v1/keys/{key_id}")
async def change(request: web.Request) -> web.Response:
    _caller_first(request)
    body, _ = await read_json(request)
    changes = parse_rules(body)
    parts, payer = request.app[PARTS], await _parent(request)
    key = _child(parts, payer, request.match_info["key_id"])
    key = parts.keys.update(key, **changes)
    return json_response(_described(parts, key))


@routes.delete("/v1/keys/{key_id}")
async def revoke(request: web.Request) -> web.Response:
    parts, payer = request.app[PARTS], await _parent(request)
    key = _child(parts, payer, request.match_info["key_id"])
    parts.keys.revoke(key)
    return json_response({"id": key.public_id, "object": "key", "deleted": True})


@routes.post("/v1/balance/child-key")
async def child_keys(request: web.Request) -> web.Response:
    """routstr-core's form: `count` sub-keys at once, free of charge here."""
    _caller_first(request)
    body, _ = await read_json(request)
    count = whole(body, "count", least=1)
    if count is None or count > MAX_CHILDREN:
        raise BadRequest(f"count must be from 1 to {MAX_CHILDREN}", param="count")
    rules = Rules(
        spend_limit_msat=whole(body, "balance_limit"),
        limit_period=period(body.get("balance_limit_reset"), "balance_limit_reset"),
        expires_at=moment(body, "validity_date"),
    )
    parts, payer = request.app[PARTS], await _parent(request)
    made = parts.keys.create_child(payer.account_id, rules, count)
    balance = parts.ledger.get(payer.account_id).balance_msat
    return json_response(
        {
            "api_keys": [key for key, _ in made],
            "ids": [f"key_{account_id}" for _, account_id in made],
            "count": count,
            "cost_msats": 0,
            "cost_sats": 0,
            "parent_balance": balance,
            "parent_balance_sats": balance // 1000,
        }
    )


@routes.post("/v1/balance/child-key/reset")
async def reset_child(request: web.Request) -> web.Response:
    _caller_first(request)
    body, _ = await read_json(request)
    given = body.get("child_key")
    if not isinstance(given, str) or not given.strip():
        raise BadRequest("child_key is required: the sub-key (sk-…)", param="child_key")
    parts, payer = request.app[PARTS], await _parent(request)
    account_id = parts.ledger.account_id(hash_key(given.strip()))
    key = parts.keys.get(account_id) if account_id is not None else None
    if key is None or key.parent_id != payer.account_id:
        raise NotFound("no sub-key of this key is this one", code="key_not_found")
    parts.keys.reset(key)
    return json_response({"success": True, "message": "Child key balance reset successfully."})
