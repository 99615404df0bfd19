"""Wallet endpoints (and Routstr's /v1/balance aliases): create, balance, topup, withdraw."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

from aiohttp import web

import wallet as cashu
from node.context import NODE
from node.errors import BadRequest, NotFound, PaymentRequired, ServiceUnavailable, Unauthorized
from node.ledger import hash_key
from node.payments import bearer, pay_change
from node.web import json_response, read_json

routes = web.RouteTableDef()


def _token_field(body: dict[str, Any], *names: str) -> str:
    for name in names:
        value = body.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise BadRequest(f"{names[0]} is required: a cashuA… or cashuB… token", param=names[0])


async def _account(request: web.Request) -> int:
    key = bearer(request)
    if key is None:
        raise Unauthorized("send 'Authorization: Bearer sk-…' (or the Cashu token used as key)")
    return await request.app[NODE].payments.account_for_key(key)


def _balance_json(request: web.Request, account_id: int) -> dict[str, Any]:
    account = request.app[NODE].ledger.get(account_id)
    return {
        "balance": account.balance_msat // 1000,
        "balance_msat": account.balance_msat,
        "reserved": -(-account.reserved_msat // 1000),
        "reserved_msat": account.reserved_msat,
        "currency": "sat",
    }


@routes.post("/v1/wallet/create")
@routes.post("/v1/balance/create")
@routes.get("/v1/balance/create")
async def create(request: web.Request) -> web.Response:
    node = request.app[NODE]
    if request.method == "GET":
        body: dict[str, Any] = dict(request.query)
    else:
        body, _ = await read_json(request)
    token = _token_field(body, "cashu_token", "initial_balance_token")
    key, account_id = await node.payments.create_key(token)
    account = node.ledger.get(account_id)
    return json_response(
        {
            "api_key": key,
            "balance": account.balance_msat // 1000,
            "balance_msat": account.balance_msat,
            "mint": account.mint,
            "unit": "sat",
        }
    )


@routes.get("/v1/wallet/balance")
@routes.get("/v1/wallet/info")
@routes.get("/v1/balance/info")
async def balance(request: web.Request) -> web.Response:
    account_id = await _account(request)
    return json_response({**_balance_json(request, account_id), "api_key": None})


@routes.post("/v1/wallet/topup")
@routes.post("/v1/balance/topup")
async def topup(request: web.Request) -> web.Response:
    body, _ = await read_json(request)
    token = _token_field(body, "cashu_token")
    account_id = await _account(request)
    added_msat = await request.app[NODE].payments.topup(account_id, token)
    state = _balance_json(request, account_id)
    return json_response(
        {
            "balance": state["balance"],
            "balance_msat": state["balance_msat"],
            "amount_added": added_msat // 1000,
            "amount_added_msat": added_msat,
            "currency": "sat",
        }
    )


def _amount(body: dict[str, Any], available_sat: int) -> int:
    amount = body.get("amount", available_sat)
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise BadRequest("amount must be a positive whole number of sat", param="amount")
    if amount > available_sat:
        raise PaymentRequired(f"insufficient balance: {available_sat} sat can be withdrawn")
    return amount


def idempotency_key(request: web.Request) -> tuple[str, str | None]:
    """A payout's key, and the one made up for a client that sent none (None if it did).
    A client that retries with the same Idempotency-Key gets the same token back."""
    given = request.headers.get("Idempotency-Key", "").strip()
    made = None if given else uuid.uuid4().hex
    return hash_key(given or str(made))[:32], made


@contextlib.contextmanager
def payout_in_doubt(made: str | None) -> Iterator[None]:
    """A payout the mint may have made: only a retry under its key can fetch the token (or
    find it refunded), so a client that sent no key is told the one it was made under."""
    try:
        yield
    except ServiceUnavailable as exc:
        if made is not None and exc.headers.get("x-should-retry") == "false":
            exc.headers["Idempotency-Key"] = made
            exc.message = (
                "the mint stopped answering mid-payout; retry with this answer's "
                "Idempotency-Key header to get the token once the mint is back"
            )
        raise


def token_json(token: str) -> dict[str, Any]:
    parsed = cashu.parse_token(token)
    return {"cashu_token": token, "amount": parsed.amount, "mint": parsed.mint}


async def _pay_out(
    request: web.Request, account_id: int, sats: int, mint: str | None, idem: tuple[str, str | None]
) -> str:
    key, made = idem
    # the account stays debited until the node settles a payout left in doubt
    with payout_in_doubt(made):
        return await request.app[NODE].payments.withdraw(account_id, sats, mint, key)


@routes.post("/v1/wallet/withdraw")
async def withdraw(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body, _ = await read_json(request)
    account_id = await _account(request)
    idem = idempotency_key(request)
    done = await node.payments.earlier_withdrawal(account_id, idem[0])
    if done is None:
        available = node.ledger.get(account_id).available_msat // 1000
        amount = _amount(body, available)
        mint = body.get("mint")
        if mint is not None and not isinstance(mint, str):
            raise BadRequest("mint must be a URL", param="mint")
        done = await _pay_out(request, account_id, amount, mint, idem)
    return json_response(token_json(done))


@routes.post("/v1/balance/refund")
@routes.post("/v1/wallet/refund")
async def refund(request: web.Request) -> web.Response:
    """Routstr's refund: the whole balance (in sat) back as one token."""
    node = request.app[NODE]
    account_id = await _account(request)
    idem = idempotency_key(request)
    done = await node.payments.earlier_withdrawal(account_id, idem[0])
    if done is None:
        available = node.ledger.get(account_id).available_msat // 1000
        if available <= 0:
            raise PaymentRequired("nothing to refund: the balance is below 1 sat")
        done = await _pay_out(request, account_id, available, None, idem)
    info = token_json(done)
    return json_response({**info, "token": done, "sats": info["amount"]})


@routes.get("/v1/wallet/change/{request_id}")
async def change(request: web.Request) -> web.Response:
    """The change of an X-Cashu request, for a client that lost the answer. Needs the token."""
    node = request.app[NODE]
    token = request.headers.get("X-Cashu", "").strip() or (bearer(request) or "")
    account = node.ledger.find(hash_key(token)) if token else None
    if account is None or account.kind != "oneshot":
        raise NotFound("no X-Cashu payment with this token", code="payment_not_found")
    request_id = request.match_info["request_id"]
    paid = await pay_change(node, account.id, request_id)
    if paid is None:
        raise NotFound(
            "no change for this request (nothing left, or not paid yet)", code="change_not_found"
        )
    return json_response({**token_json(paid), "request_id": request_id})
