"""Wallet endpoints (and Routstr's /v1/balance aliases): create, balance, topup, withdraw,
refund, and the change of X-Cashu payments.

Whoever moves the money pays its fees: a payout of N sat is a token worth exactly N (its
receiver pays its own fee to redeem it), and the account is debited N plus the node's swap fee
for it (`fee_sat`, 0 when the token is made of proofs held as they are)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from aiohttp import web

import wallet as cashu
from node.errors import BadRequest, Forbidden, NotFound, ServiceUnavailable, Unauthorized
from node.http.credentials import bearer, idempotency_key, without_uri, x_cashu
from node.http.web import REQUEST_ID, json_response, read_json
from node.money import lnurl
from node.money.keys import Rules
from node.money.ledger import Account, hash_key
from node.money.payments import Payer, is_token
from node.parts import PARTS, Parts
from node.routes.rules import creation_rules

routes = web.RouteTableDef()


def _token_field(body: dict[str, Any], *names: str) -> str:
    for name in names:
        value = body.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise BadRequest(f"{names[0]} is required: a cashuA… or cashuB… token", param=names[0])


async def _key_account(request: web.Request) -> int:
    key = bearer(request)
    if key is None:
        raise Unauthorized("send 'Authorization: Bearer sk-…' (or the Cashu token used as key)")
    return await request.app[PARTS].payments.account_for_key(key)


async def _account(request: web.Request) -> int:
    """The account a key owns, to move money in or out of: never a sub-key's."""
    account_id = await _key_account(request)
    if request.app[PARTS].payments.key_payer(account_id).account_id != account_id:
        raise _subkey_refused()
    return account_id


def _subkey_refused() -> Forbidden:
    return Forbidden(
        "a sub-key spends from its parent's balance: it cannot top up, withdraw or make "
        "sub-keys; use the parent key",
        code="subkey_not_allowed",
    )


async def holder(request: web.Request) -> Payer:
    """Who asks about a key's balance and history: the Bearer key (a sub-key is told about
    itself), or an X-Cashu payment (its one-shot account)."""
    if request.headers.get("X-Cashu", "").strip():
        account_id = _paid_with(request, ("oneshot", "token")).id
        return Payer(account_id, key_id=account_id)
    return request.app[PARTS].payments.key_payer(await _key_account(request))


def _paid_with(request: web.Request, kinds: tuple[str, ...] = ("oneshot",)) -> Account:
    """The account an X-Cashu payment made (of `kinds`: a token used as key too, for its
    balance), found by the paying token in the X-Cashu header or as Bearer; never redeems."""
    parts = request.app[PARTS]
    token = x_cashu(request) or (bearer(request) or "")
    if not token:
        raise Unauthorized("send the paying token in the X-Cashu header (or as Bearer)")
    account = parts.ledger.find(hash_key(token)) if is_token(token) else None
    if account is None or account.kind not in kinds:
        raise NotFound("no X-Cashu payment with this token", code="payment_not_found")
    return account


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
    if not expiry.isdigit() or not 0 < int(expiry) < 2**62:
        raise BadRequest("Key-Expiry-Time must be unix seconds", param="Key-Expiry-Time")
    if address and not lnurl.looks_valid(address):
        raise BadRequest(
            "Refund-LNURL must be a Lightning address (name@host) or an lnurl1… string",
            param="Refund-LNURL",
        )
    return address, int(expiry)


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
        return _balance_json(request, _paid_with(request, ("oneshot", "token")).id)
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
    account_id = await _account(request)
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


def _amount(body: dict[str, Any]) -> int | None:
    """The sat asked for; None: the most the account can pay out, its payout's fee beside it."""
    amount = body.get("amount")
    if amount is None:
        return None
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise BadRequest("amount must be a positive whole number of sat", param="amount")
    return amount


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


def payout_json(paid: cashu.PaidOut) -> dict[str, Any]:
    """A payout's answer: the token (worth `amount`) and what was debited beyond it."""
    return {**token_json(paid.token), "fee_sat": paid.fee_sat, "fee_msat": paid.fee_sat * 1000}


async def _withdraw(request: web.Request, body: dict[str, Any]) -> cashu.PaidOut:
    """Pay out of the caller's account (an Idempotency-Key retry gets the first payout)."""
    parts = request.app[PARTS]
    account_id = await _account(request)
    key, made = idempotency_key(request)
    done = await parts.payments.earlier_withdrawal(account_id, key)
    if done is not None:
        return done
    sats, mint = _amount(body), body.get("mint")
    if mint is not None and not isinstance(mint, str):
        raise BadRequest("mint must be a URL", param="mint")
    # the account stays debited until the node settles a payout left in doubt
    with payout_in_doubt(made):
        return await parts.payments.withdraw(account_id, sats, mint, key)


def melt_json(melted: cashu.Melted) -> dict[str, Any]:
    """A payment to an invoice: the amount paid, and the fee beyond it (the input fee and the
    Lightning fee actually paid; the unused reserve went back to the balance)."""
    return {
        "amount": melted.amount_sat,
        "fee_sat": melted.fee_sat,
        "fee_msat": melted.fee_sat * 1000,
        "fee_reserve_sat": melted.fee_reserve_sat,
        "preimage": melted.preimage,
        "status": melted.state,
        "mint": melted.mint,
    }


async def _pay_lightning(request: web.Request, body: dict[str, Any]) -> cashu.Melted:
    """`invoice` (bolt11), or `lightning_address` with `amount` in sat."""
    parts = request.app[PARTS]
    invoice, address = body.get("invoice"), body.get("lightning_address")
    mint = body.get("mint")
    if mint is not None and not isinstance(mint, str):
        raise BadRequest("mint must be a URL", param="mint")
    sats = _amount(body) or 0
    if invoice is None:
        if not isinstance(address, str) or not address.strip():
            raise BadRequest("lightning_address must be name@host", param="lightning_address")
        if not sats:
            raise BadRequest("amount (sat) is required with lightning_address", param="amount")
    elif not isinstance(invoice, str) or not invoice.strip():
        raise BadRequest("invoice must be a bolt11 invoice (lnbc…)", param="invoice")
    account_id = await _account(request)
    key, made = idempotency_key(request)
    with payout_in_doubt(made):
        if isinstance(invoice, str):
            return await parts.lightning.pay(account_id, invoice.strip(), key, mint)
        return await parts.lightning.pay_address(account_id, str(address), sats, key, mint)


@routes.post("/v1/wallet/withdraw")
async def withdraw(request: web.Request) -> web.Response:
    """`amount` sat as a token (default: the most the balance pays once the fee is in), or
    `invoice`: a bolt11 invoice paid out of the balance, its fees beside it."""
    body, _ = await read_json(request)
    if "invoice" in body or "lightning_address" in body:
        return json_response(melt_json(await _pay_lightning(request, body)))
    paid = await _withdraw(request, body)
    return json_response(payout_json(paid))


async def _lazy_refund(request: web.Request) -> web.Response:
    try:
        account = _paid_with(request)
    except NotFound:
        raise NotFound(
            "Refund not found: no payment with this token", code="refund_not_found"
        ) from None
    paid = await request.app[PARTS].payments.change.swept(account, request[REQUEST_ID])
    body = {**payout_json(paid), "token": paid.token, "sats": str(paid.amount_sat)}
    return json_response(body, headers={"X-Cashu": paid.token})


@routes.post("/v1/balance/refund")
@routes.post("/v1/wallet/refund")
async def refund(request: web.Request) -> web.Response:
    """Routstr's refund: the balance back as one token, the payout's fee taken beside it; or,
    with `invoice` (or `lightning_address` and `amount`), paid to a Lightning wallet. With the
    paying X-Cashu header alone: that payment's change (routstr-core's lazy refund; 425 while
    its request runs, 404 when it left none)."""
    parts = request.app[PARTS]
    body: dict[str, Any] = (await read_json(request))[0] if request.body_exists else {}
    if "invoice" in body or "lightning_address" in body:
        return json_response(melt_json(await _pay_lightning(request, body)))
    if x_cashu(request):
        return await _lazy_refund(request)
    key = bearer(request)
    account_id = None if key is None else parts.ledger.account_id(hash_key(key))
    if account_id is None:  # never redeems
        raise Unauthorized(
            "Key not found: deposit first via /v1/wallet/create", code="key_not_found"
        )
    if parts.payments.key_payer(account_id).account_id != account_id:
        raise _subkey_refused()
    if parts.ledger.get(account_id).balance_msat < 1000:  # routstr-core's words
        raise BadRequest("No balance to refund", code="no_balance")
    paid = await _withdraw(request, {})
    info = payout_json(paid)
    return json_response({**info, "token": paid.token, "sats": str(info["amount"])})


@routes.get("/v1/wallet/change")
async def changes(request: web.Request) -> web.Response:
    """Every change of an X-Cashu payment, for a client that lost the answers: the paying
    token in the X-Cashu header (or as Bearer) is all it needs."""
    account = _paid_with(request)
    listing = await request.app[PARTS].payments.change.listing(account, request[REQUEST_ID])
    return json_response(listing)


@routes.get("/v1/wallet/change/{request_id}")
async def change(request: web.Request) -> web.Response:
    """The change of an X-Cashu request, for a client that lost the answer. Needs the token."""
    parts = request.app[PARTS]
    account = _paid_with(request)
    request_id = request.match_info["request_id"]
    paid = await parts.payments.change.pay(account.id, request_id)
    if paid is None:
        raise NotFound(
            "no change for this request (nothing left, or not paid yet)", code="change_not_found"
        )
    return json_response({**token_json(paid), "request_id": request_id})
