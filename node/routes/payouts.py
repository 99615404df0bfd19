"""Money out of an account (and Routstr's /v1/balance aliases): withdraw as a token or to a
Lightning invoice or address, refund, and the change of X-Cashu payments.

Whoever moves the money pays its fees: a payout of N sat is a token worth exactly N (its
receiver pays its own fee to redeem it), and the account is debited N plus the node's swap fee
for it (`fee_sat`, 0 when the token is made of proofs held as they are)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from aiohttp import web

import wallet as cashu
from node.errors import BadRequest, NotFound, ServiceUnavailable, Unauthorized
from node.http.credentials import bearer, idempotency_key, x_cashu
from node.http.web import REQUEST_ID, json_response, read_json
from node.money.ledger import hash_key
from node.parts import PARTS
from node.routes.holders import own_account, paid_with, subkey_refused

routes = web.RouteTableDef()


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
    """Pay out of the caller's account (an Idempotency-Key retry of the same request gets the
    first payout; the key sent with another amount or mint, a 422)."""
    parts = request.app[PARTS]
    account_id = await own_account(request)
    key, made = idempotency_key(request)
    sats, mint = _amount(body), body.get("mint")
    if mint is not None and not isinstance(mint, str):
        raise BadRequest("mint must be a URL", param="mint")
    done = await parts.payments.earlier_withdrawal(account_id, key, sats, mint)
    if done is not None:
        return done
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
    account_id = await own_account(request)
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
        account = paid_with(request)
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
        raise subkey_refused()
    if parts.ledger.get(account_id).balance_msat < 1000:  # routstr-core's words
        raise BadRequest("No balance to refund", code="no_balance")
    paid = await _withdraw(request, {})
    info = payout_json(paid)
    return json_response({**info, "token": paid.token, "sats": str(info["amount"])})


@routes.get("/v1/wallet/change")
async def changes(request: web.Request) -> web.Response:
    """Every change of an X-Cashu payment, for a client that lost the answers: the paying
    token in the X-Cashu header (or as Bearer) is all it needs."""
    account = paid_with(request)
    listing = await request.app[PARTS].payments.change.listing(account, request[REQUEST_ID])
    return json_response(listing)


@routes.get("/v1/wallet/change/{request_id}")
async def change(request: web.Request) -> web.Response:
    """The change of an X-Cashu request, for a client that lost the answer. Needs the token."""
    parts = request.app[PARTS]
    account = paid_with(request)
    request_id = request.match_info["request_id"]
    paid = await parts.payments.change.pay(account.id, request_id)
    if paid is None:
        raise NotFound(
            "no change for this request (nothing left, or not paid yet)", code="change_not_found"
        )
    return json_response({**token_json(paid), "request_id": request_id})
