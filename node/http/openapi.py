"""The OpenAPI 3.1 description of the node's HTTP API, served at /openapi.json.

The contract's main routes are described by hand (their bodies and answers); every other route
the application serves is added from its router as the document is asked for (summary
from the handler's docstring), so the document lists every route. The admin's routes are left
out (they are the operator's, behind a session). The safety suite runs schemathesis against it
(every generated request must end in anything but a 5xx).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from node.http.web import json_response

routes = web.RouteTableDef()

ERROR = {"$ref": "#/components/schemas/Error"}
JSON_ERRORS = {"description": "an error", "content": {"application/json": {"schema": ERROR}}}
TOKEN_BODY = {
    "type": "object",
    "required": ["cashu_token"],
    "properties": {"cashu_token": {"type": "string", "description": "cashuA… or cashuB…"}},
}


def _op(summary: str, ok: dict[str, Any], body: dict[str, Any] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            "200": {"description": "ok", "content": {"application/json": {"schema": ok}}},
            "4XX": JSON_ERRORS,
            "503": JSON_ERRORS,
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _paid(op: dict[str, Any]) -> dict[str, Any]:
    op["security"] = [{"bearer": []}, {"cashu": []}]
    return op


OBJECT: dict[str, Any] = {"type": "object"}
BALANCE = {
    "type": "object",
    "properties": {
        "balance": {"type": "integer"},
        "balance_msat": {"type": "integer"},
        "reserved": {"type": "integer"},
        "reserved_msat": {"type": "integer"},
        "credit_msat": {"type": "integer"},
        "withdrawable_msat": {"type": "integer"},
        "currency": {"type": "string"},
    },
}
TOKEN_OUT = {
    "type": "object",
    "properties": {
        "cashu_token": {"type": "string"},
        "amount": {"type": "integer"},
        "mint": {"type": "string"},
        "fee_sat": {"type": "integer"},
        "fee_msat": {"type": "integer"},
    },
}
CHANGES = {
    "type": "object",
    "properties": {
        "changes": {"type": "array", "items": {"type": "object"}},
        "balance_msat": {"type": "integer"},
    },
}
CHAT_BODY = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": {"type": "string"},
        "messages": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {"role": {"type": "string"}, "content": {"type": "string"}},
            },
        },
        "max_tokens": {"type": "integer"},
        "n": {"type": "integer"},
        "stream": {"type": "boolean"},
    },
}
WITHDRAW_BODY = {
    "type": "object",
    "properties": {
        "amount": {"type": "integer"},
        "mint": {"type": "string"},
        "invoice": {"type": "string", "description": "a bolt11 invoice to pay instead"},
        "lightning_address": {"type": "string", "description": "name@host, with amount"},
    },
}
INVOICE_BODY = {
    "type": "object",
    "required": ["amount_sats"],
    "properties": {
        "amount_sats": {"type": "integer"},
        "purpose": {"type": "string", "enum": ["create", "topup"]},
    },
}
INVOICE = {
    "type": "object",
    "properties": {
        "invoice_id": {"type": "string"},
        "bolt11": {"type": "string"},
        "amount_sats": {"type": "integer"},
        "expires_at": {"type": "integer"},
        "payment_hash": {"type": "string"},
    },
}
INVOICE_STATUS = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["pending", "paid", "expired"]},
        "api_key": {"type": "string"},
        "amount_sats": {"type": "integer"},
        "paid_at": {"type": ["integer", "null"]},
        "created_at": {"type": "integer"},
        "expires_at": {"type": "integer"},
    },
}
RECOVER_BODY = {
    "type": "object",
    "required": ["bolt11"],
    "properties": {"bolt11": {"type": "string"}},
}
INVOICE_ID = {"name": "invoice_id", "in": "path", "required": True, "schema": {"type": "string"}}
MODEL_ID = {"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}
REQUEST_ID = {"name": "request_id", "in": "path", "required": True, "schema": {"type": "string"}}
KEY_ID = {"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _query(*names: str) -> list[dict[str, Any]]:
    return [
        {"name": n, "in": "query", "required": False, "schema": {"type": "string"}} for n in names
    ]


KEY_RULES = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "spend_limit_msat": {"type": ["integer", "null"]},
        "limit_period": {"type": ["string", "null"], "enum": ["day", "week", "month", None]},
        "expires_at": {"type": ["integer", "string", "null"]},
        "models": {"type": ["array", "null"], "items": {"type": "string"}},
        "per_minute": {"type": ["integer", "null"]},
    },
}
CHILD_KEYS = {
    "type": "object",
    "required": ["count"],
    "properties": {
        "count": {"type": "integer"},
        "balance_limit": {"type": "integer"},
        "balance_limit_reset": {"type": "string"},
        "validity_date": {"type": "integer"},
    },
}
KEYS_PATHS: dict[str, Any] = {
    "/v1/usage": {
        "get": {
            **_paid(_op("usage totals and rows", OBJECT)),
            "parameters": _query("from", "to", "group_by"),
        }
    },
    "/v1/me": {"get": _paid(_op("the key: kind, balance, limits, expiry", OBJECT))},
    "/v1/balance": {"get": _paid(_op("the balance, with spend", BALANCE))},
    "/v1/balance/history": {"get": _paid(_op("ecash in and out", OBJECT))},
    "/v1/requests": {
        "get": {**_paid(_op("request records", OBJECT)), "parameters": _query("limit", "before")}
    },
    "/v1/requests/{request_id}": {
        "get": {**_paid(_op("one request's record", OBJECT)), "parameters": [REQUEST_ID]}
    },
    "/v1/keys": {
        "get": _paid(_op("the sub-keys", OBJECT)),
        "post": _paid(_op("a new sub-key", OBJECT, KEY_RULES)),
    },
    "/v1/keys/{key_id}": {
        "get": {**_paid(_op("one sub-key", OBJECT)), "parameters": [KEY_ID]},
        "patch": {
            **_paid(_op("change a sub-key's rules", OBJECT, KEY_RULES)),
            "parameters": [KEY_ID],
        },
        "delete": {**_paid(_op("revoke a sub-key", OBJECT)), "parameters": [KEY_ID]},
    },
    "/v1/balance/child-key": {"post": _paid(_op("routstr-core's sub-keys", OBJECT, CHILD_KEYS))},
    "/v1/balance/child-key/reset": {
        "post": _paid(_op("count a sub-key's spend from now", OBJECT, OBJECT))
    },
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "nutgate", "version": "0.1.0", "description": "LLM access paid in ecash"},
    "paths": {
        "/health": {"get": _op("liveness", OBJECT)},
        "/v1/models": {"get": _op("the model catalogue", OBJECT)},
        "/v1/models/{model_id}": {"get": {**_op("one model", OBJECT), "parameters": [MODEL_ID]}},
        "/v1/chat/completions": {"post": _paid(_op("chat completion", OBJECT, CHAT_BODY))},
        "/v1/nodes": {"get": _op("other nodes found on Nostr", OBJECT)},
        "/v1/wallet/create": {"post": _op("a new sk- key funded by a token", OBJECT, TOKEN_BODY)},
        "/v1/wallet/balance": {"get": _paid(_op("the key's balance", BALANCE))},
        "/v1/wallet/topup": {"post": _paid(_op("add a token to the balance", OBJECT, TOKEN_BODY))},
        "/v1/wallet/withdraw": {
            "post": _paid(_op("pay the balance out as a token", TOKEN_OUT, WITHDRAW_BODY))
        },
        "/v1/wallet/change": {"get": _paid(_op("every change of an X-Cashu payment", CHANGES))},
        "/v1/wallet/refund": {"post": _paid(_op("the whole balance as a token", TOKEN_OUT))},
        "/v1/wallet/change/{request_id}": {
            "get": {
                **_paid(_op("an X-Cashu request's change", TOKEN_OUT)),
                "parameters": [REQUEST_ID],
            }
        },
        "/v1/balance/create": {
            "post": _op(
                "Routstr alias of /v1/wallet/create",
                OBJECT,
                {
                    "type": "object",
                    "properties": {"initial_balance_token": {"type": "string"}},
                },
            )
        },
        "/v1/balance/info": {"get": _paid(_op("Routstr's balance info (msat)", BALANCE))},
        "/v1/balance/topup": {"post": _paid(_op("Routstr alias of topup", OBJECT, TOKEN_BODY))},
        "/v1/balance/refund": {"post": _paid(_op("the whole balance as a token", TOKEN_OUT))},
        "/v1/balance/lightning/invoice": {
            "post": _op("a Lightning invoice that creates or tops up a key", INVOICE, INVOICE_BODY)
        },
        "/v1/balance/lightning/invoice/{invoice_id}/status": {
            "get": {
                **_op("an invoice's status (and key)", INVOICE_STATUS),
                "parameters": [INVOICE_ID],
            }
        },
        "/v1/balance/lightning/recover": {
            "post": _op("an invoice found by its bolt11, settled", INVOICE_STATUS, RECOVER_BODY)
        },
        **KEYS_PATHS,
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "sk-… or cashu…"},
            "cashu": {"type": "apiKey", "in": "header", "name": "X-Cashu"},
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["message", "type"],
                        "properties": {
                            "message": {"type": "string"},
                            "type": {"type": "string"},
                            "param": {"type": ["string", "null"]},
                            "code": {"type": ["string", "null"]},
                        },
                    }
                },
            }
        },
    },
}


SKIPPED = ("/admin", "/openapi.json")
METHODS = ("get", "post", "put", "patch", "delete")
_PATH_VAR = re.compile(r"\{(\w+)[^}]*\}")


def _summary(handler: Any, path: str) -> str:
    doc = (getattr(handler, "__doc__", None) or "").strip()
    return doc.split("\n\n", 1)[0].replace("\n", " ") if doc else path


def complete(router: web.UrlDispatcher) -> dict[str, Any]:
    """SPEC, with every route of `router` it does not describe yet."""
    paths: dict[str, Any] = {k: dict(v) for k, v in SPEC["paths"].items()}
    for route in router.routes():
        method = route.method.lower()
        info = route.resource.get_info() if route.resource is not None else {}
        raw = str(info.get("path") or info.get("formatter") or "")
        if method not in METHODS or not raw or raw.startswith(SKIPPED):
            continue
        path = _PATH_VAR.sub(lambda m: "{" + m.group(1) + "}", raw)
        entry = paths.setdefault(path, {})
        if method in entry:
            continue
        op = _op(_summary(route.handler, path), OBJECT)
        names = _PATH_VAR.findall(raw)
        if names:
            op["parameters"] = [
                {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                for n in names
            ]
        entry[method] = op
    return {**SPEC, "paths": paths}


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    """This document."""
    return json_response(complete(request.app.router))
