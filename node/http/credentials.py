"""What a request presents to pay, or to be counted by: read from its headers, at the edge.

    Authorization: Bearer sk-… | cashu…   an account's key, or a token used as one
    x-api-key: sk-… | cashu…              the same (what Anthropic's SDKs and Claude Code's
                                          ANTHROPIC_API_KEY send); Bearer wins when both come
    X-Cashu: cashu…                       a one-shot payment: it pays (and is counted) first
    Idempotency-Key: …                    names a retry: of a paid request, of a payout

The rate limiter, the stored-object check and the payer all ask which account a credential
opens: it is hashed and looked up once per request (`account_by_secret`). The routes hand the
money side a `Presented` (node.money.payments), never the request itself.
"""

from __future__ import annotations

import uuid

from aiohttp import web

from node.http.web import REQUEST_ID
from node.money.change import idempotency_hash
from node.money.ledger import Ledger, hash_key
from node.money.payments import TOKEN_PREFIXES, Presented

_LOOKUP = web.RequestKey("account_lookup", tuple)  # (secret, key hash, account id | None)


def without_uri(value: str) -> str:
    """A token as wallets copy it, `cashu:cashuB…` (the URI form), is the token."""
    if value[:6].lower() == "cashu:" and value[6:].startswith(TOKEN_PREFIXES):
        return value[6:]
    return value


def bearer(request: web.Request) -> str | None:
    """The key or token presented as `Authorization: Bearer`, else as `x-api-key`."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return without_uri(request.headers.get("x-api-key", "").strip()) or None
    return without_uri(value.strip())


def x_cashu(request: web.Request) -> str:
    return without_uri(request.headers.get("X-Cashu", "").strip())


def credential(request: web.Request) -> str | None:
    """What would pay for the request: X-Cashu first (as the payer decides), else the Bearer
    value."""
    return x_cashu(request) or bearer(request)


def account_by_secret(request: web.Request, ledger: Ledger, secret: str) -> tuple[str, int | None]:
    """The key hash of a Bearer value or token, and the id of the account it opens, if any:
    hashed and looked up once per request (the rate limiter and the payer both ask)."""
    memo = request.get(_LOOKUP)
    if memo is not None and memo[0] == secret:
        return memo[1], memo[2]
    key_hash = hash_key(secret)
    account_id = ledger.account_id(key_hash)
    request[_LOOKUP] = (secret, key_hash, account_id)
    return key_hash, account_id


def presented(request: web.Request, ledger: Ledger) -> Presented:
    """What the request brings to pay with, and the account that opens, for the payer."""
    token, key = x_cashu(request), bearer(request)
    secret = token or key
    key_hash, account_id = account_by_secret(request, ledger, secret) if secret else ("", None)
    given = request.headers.get("Idempotency-Key", "").strip()
    return Presented(
        request[REQUEST_ID],
        token,
        key,
        key_hash,
        account_id,
        idempotency_hash(given) if given else None,
    )


def idempotency_key(request: web.Request) -> tuple[str, str | None]:
    """A payout's key, and the one made up for a client that sent none (None if it did).
    A client that retries with the same Idempotency-Key gets the same token back."""
    given = request.headers.get("Idempotency-Key", "").strip()
    made = None if given else uuid.uuid4().hex
    return idempotency_hash(given or str(made)), made
