"""Wallet endpoints (and Routstr's /v1/balance aliases) that open and fill an account and tell
its balance: create, topup, balance, info. Money out is in node/routes/payouts.py."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from node.errors import BadRequest, ServiceUnavailable
from node.http.credentials import bearer, without_uri, x_cashu
from node.http.web import digits, json_response, read_json
from node.money import lnurl
from node.money.keys import Rules
from node.money.ledger import hash_key
from node.money.payments import Payer
from node.parts import PARTS, Parts
from node.routes.holders import holder, own_account, paid_with
from node.routes.rules import creation_rules

routes = web.RouteTableDef()


def _token_field(body: dict[str, Any], *names: str) -> str:
    for name in names:
        value = body.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise BadRequest(f"{names[0]} is required: a cashuA… or cashuB… token", param=names[0])


def _balance_json(request: web.Request, account_id: int) -> dict[str, Any]:
    account = request.app[PARTS].ledger.get(account_id)
    return {
        "balance": account.balance_msat // 1000,
        "balance_msat": account.balance_msat,
        "reserved": -(-account.reserved_msat // 1000),
        "reserved_msat": account.reserved_msat,
        "credit_msat": account.credit_msat,  # operator credit: spends, never paid out
        "withdrawable_msat": account.withdrawable_msat,
        "currency": "sat",
    }


def balance_of(parts: Parts, payer: Payer, now: int) -> dict[str, Any]:
    """The balance the holder spends: a sub-key's is its parent's, as far as its limit goes."""
    account = parts.ledger.get(payer.account_id)
    if payer.owner_id == payer.account_id:
        spendable = account.available_msat
        state: dict[str, Any] = {
            "balance_msat": account.balance_msat,
            "reserved_msat": account.reserved_msat,
            "credit_msat": account.credit_msat,
            "withdrawable_msat": account.withdrawable_msat,
        }
    else:  # a sub-key: what it may still spend, never its parent's balance itself
        spendable = account.available_msat
        if payer.key is not None and payer.key.rules.spend_limit_msat is not None:
            left = payer.key.rules.spend_limit_msat - parts.keys.spent(payer.key, now)
            spendable = max(0, min(spendable, left))
        state = {"balance_msat": spendable, "reserved_msat": 0, "credit_msat": 0}
        state["withdrawable_msat"] = 0
    return {
        "balance": state["balance_msat"] // 1000,
        **state,
        "available_msat": spendable,
        "currency": "sat",
    }


@routes.post("/v1/wallet/create")
@routes.post("/v1/balance/create")
@routes.get("/v1/balance/create")
async def create(request: web.Request) -> web.Response:
    parts = request.app[PARTS]
    if request.method == "GET":
        body: dict[str, Any] = dict(request.query)
    else:
        body, _ = await read_json(request)
    token = _token_field(body, "cashu_token", "initial_balance_token")
    rules = creation_rules(body)  # checked before anything is redeemed
    refund = refund_on_expiry(request)
    if refund is not None and rules.get("expires_at") is None:
        rules["expires_at"] = refund[1]
    if parts.lightning.takes_foreign(token):
        key, account_id, _ = await _take_foreign(request, token, None, body)
    else:
        key, account_id = await parts.payments.create_key(token)
    if rules:  # a retried creation keeps the rules it was first made with
        parts.keys.set_rules(account_id, Rules(**rules))
    if refund is not None and refund[0]:
        parts.refunds.arrange(account_id, refund[0], refund[1])
    account = parts.ledger.get(account_id)
    return json_response(
        {
            "api_key": key,
            "balance": account.balance_msat // 1000,
            "balance_msat": account.balance_msat,
            "mint": account.mint,
            "unit": "sat",
        }
    )


def refund_on_expiry(request: web.Request) -> tuple[str, int] | None:
    """Routstr's `Key-Expiry-Time` (unix seconds) and `Refund-LNURL` (a Lightning address or
    an lnurl1… string) headers: (address, expiry); the address "" when only the expiry came."""
    expiry = request.headers.get("Key-Expiry-Time", "").strip()
    address = request.headers.get("Refund-LNURL", "").strip()
    if not expiry:
        if address:
            raise BadRequest("Refund-LNURL needs a Key-Expiry-Time header", param="Refund-LNURL")
        return None
    seconds = digits(expiry, 19)
    if seconds is None or not 0 < seconds < 2**62:
        raise BadRequest("Key-Expiry-Time must be unix seconds", param="Key-Expiry-Time")
    if address and not lnurl.looks_valid(address):
        raise BadRequest(
            "Refund-LNURL must be a Lightning address (name@host) or an lnurl1… string",
            param="Refund-LNURL",
        )
    return address, seconds


async def _take_foreign(
    request: web.Request, token: str, account_id: int | None, body: dict[str, Any]
) -> tuple[str, int, int]:
    """`[cashu] accept_foreign`: a token of another mint melted into an invoice of ours; the
    fees are quoted first (400 foreign_mint_fees) and taken only once the client accepts them
    with `accept_fees_sat`. (key, account, msat credited)."""
    parts = request.app[PARTS]
    accepted = body.get("accept_fees_sat", 0)
    if not isinstance(accepted, int) or isinstance(accepted, bool) or accepted < 0:
        raise BadRequest("accept_fees_sat must be a whole number of sat", param="accept_fees_sat")
    invoice, key = await parts.lightning.redeem_foreign(token, account_id, accepted)
    if invoice.status != "paid":
        raise ServiceUnavailable(
            "the token was melted; its invoice is not credited yet: send the same request "
            "again shortly (the node credits it once paid)",
            code="foreign_pending",
            headers={"Retry-After": "2"},
        )
    if key is None:
        assert account_id is not None
        return "", account_id, invoice.amount_sat * 1000
    found = parts.ledger.account_id(hash_key(key))
    assert found is not None
    return key, found, invoice.amount_sat * 1000


async def _state(request: web.Request) -> dict[str, Any]:
    """The balance asked about: a key's (a sub-key's is what it may still spend), or with an
    X-Cashu header instead, what is left of that payment."""
    if request.headers.get("X-Cashu", "").strip():
        return _balance_json(request, paid_with(request, ("oneshot", "token")).id)
    payer = await holder(request)
    if payer.owner_id != payer.account_id:  # a sub-key: what it may still spend
        state = balance_of(request.app[PARTS], payer, int(time.time()))
        return {**state, "reserved": 0, "reserved_msat": 0}
    return _balance_json(request, payer.account_id)


@routes.get("/v1/wallet/balance")
async def balance(request: web.Request) -> web.Response:
    """A key's balance in sat and msat (the node's own shape)."""
    return json_response({**await _state(request), "api_key": None})


@routes.get("/v1/wallet/info")
@routes.get("/v1/wallet/")
@routes.get("/v1/balance/info")
async def info(request: web.Request) -> web.Response:
    """Routstr's balance info (routstr-core's shape): `balance` and `reserved` in msat, and
    `api_key`, the key (or token) that opens the account."""
    state = await _state(request)
    return json_response(
        {
            **state,
            "api_key": x_cashu(request) or bearer(request),
            "balance": state["balance_msat"],
            "reserved": state["reserved_msat"],
            "unit": "msat",
        }
    )


@routes.post("/v1/wallet/topup")
@routes.post("/v1/balance/topup")
async def topup(request: web.Request) -> web.Response:
    """A token added to the key's balance; `?cashu_token=` as older Routstr clients send it."""
    if request.query.get("cashu_token") and not request.can_read_body:
        body: dict[str, Any] = dict(request.query)
    else:
        body, _ = await read_json(request)
    token = without_uri(_token_field(body, "cashu_token"))
    account_id = await own_account(request)
    if request.app[PARTS].lightning.takes_foreign(token):
        added_msat = (await _take_foreign(request, token, account_id, body))[2]
    else:
        added_msat = await request.app[PARTS].payments.topup(account_id, token)
    state = _balance_json(request, account_id)
    return json_response(
        {
            "balance": state["balance"],
            "balance_msat": state["balance_msat"],
            "amount_added": added_msat // 1000,
            "amount_added_msat": added_msat,
            "currency": "sat",
            "msats": added_msat,  # routstr-core's answer
        }
    )
