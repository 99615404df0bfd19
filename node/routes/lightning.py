"""Lightning endpoints (Routstr's RIP-08, under /v1/balance/lightning/… as routstr-core serves
them, and /lightning/…): an invoice that funds a new key or tops one up, its status, and the
recovery of an invoice by its bolt11. Withdrawals to an invoice are in routes.payouts."""

from __future__ import annotations

from typing import Any

from aiohttp import web

import wallet as cashu
from node.errors import BadRequest, Forbidden, Unauthorized
from node.http.credentials import bearer
from node.http.web import json_response, read_json
from node.parts import PARTS

routes = web.RouteTableDef()
PREFIXES = ("/v1/balance/lightning", "/lightning")


def _invoice_json(invoice: cashu.Invoice) -> dict[str, Any]:
    return {
        "invoice_id": invoice.ref,
        "bolt11": invoice.bolt11,
        "amount_sats": invoice.amount_sat,
        "expires_at": invoice.expires_at,
        "payment_hash": invoice.payment_hash,
    }


def _status_json(request: web.Request, invoice: cashu.Invoice) -> dict[str, Any]:
    lightning = request.app[PARTS].lightning
    answer: dict[str, Any] = {
        "invoice_id": invoice.ref,
        "status": invoice.status,
        "amount_sats": invoice.amount_sat,
        "paid_at": invoice.paid_at,
        "created_at": invoice.created_at,
        "expires_at": invoice.expires_at,
        "purpose": "create" if invoice.purpose.startswith("create:") else "topup",
    }
    key = lightning.api_key(invoice)
    if key is not None:
        answer["api_key"] = key
    return answer


async def create_invoice(request: web.Request) -> web.Response:
    """`{"amount_sats", "purpose": "create"|"topup"}`; topup: the key in Authorization."""
    parts = request.app[PARTS]
    body, _ = await read_json(request)
    sats = parts.lightning.check_amount(body.get("amount_sats", body.get("amount")))
    kind = body.get("purpose", "create")
    if kind not in ("create", "topup"):
        raise BadRequest('purpose must be "create" or "topup"', param="purpose")
    account_id = None
    if kind == "topup":
        key = bearer(request)
        if key is None:
            raise Unauthorized("a topup invoice needs 'Authorization: Bearer sk-…'")
        account_id = await parts.payments.account_for_key(key)
        if parts.payments.key_payer(account_id).account_id != account_id:
            raise Forbidden(
                "a sub-key spends from its parent's balance: top up the parent key",
                code="subkey_not_allowed",
            )
    invoice = await parts.lightning.create_invoice(sats, account_id)
    return json_response(_invoice_json(invoice))


async def invoice_status(request: web.Request) -> web.Response:
    ref = request.match_info["invoice_id"]
    invoice = await request.app[PARTS].lightning.status(ref)
    return json_response(_status_json(request, invoice))


async def recover(request: web.Request) -> web.Response:
    """`{"bolt11"}`: the invoice the node issued as this bolt11, settled now."""
    body, _ = await read_json(request)
    bolt11 = body.get("bolt11")
    if not isinstance(bolt11, str) or not bolt11.strip():
        raise BadRequest("bolt11 is required: the invoice the node issued", param="bolt11")
    invoice = await request.app[PARTS].lightning.recover(bolt11)
    return json_response({**_invoice_json(invoice), **_status_json(request, invoice)})


for prefix in PREFIXES:
    routes.post(f"{prefix}/invoice")(create_invoice)
    routes.get(f"{prefix}/invoice/{{invoice_id}}/status")(invoice_status)
    routes.post(f"{prefix}/recover")(recover)
