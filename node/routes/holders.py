"""Whose account a wallet request speaks for: the Bearer key's, the account it owns (never a
sub-key's, for money in or out), or the one-shot account an X-Cashu payment made."""

from __future__ import annotations

from aiohttp import web

from node.errors import Forbidden, NotFound, Unauthorized
from node.http.credentials import bearer, x_cashu
from node.money.ledger import Account, hash_key
from node.money.payments import Payer, is_token
from node.parts import PARTS


async def _key_account(request: web.Request) -> int:
    key = bearer(request)
    if key is None:
        raise Unauthorized("send 'Authorization: Bearer sk-…' (or the Cashu token used as key)")
    return await request.app[PARTS].payments.account_for_key(key)


async def own_account(request: web.Request) -> int:
    """The account a key owns, to move money in or out of: never a sub-key's."""
    account_id = await _key_account(request)
    if request.app[PARTS].payments.key_payer(account_id).account_id != account_id:
        raise subkey_refused()
    return account_id


def subkey_refused() -> Forbidden:
    return Forbidden(
        "a sub-key spends from its parent's balance: it cannot top up, withdraw or make "
        "sub-keys; use the parent key",
        code="subkey_not_allowed",
    )


async def holder(request: web.Request) -> Payer:
    """Who asks about a key's balance and history: the Bearer key (a sub-key is told about
    itself), or an X-Cashu payment (its one-shot account)."""
    if request.headers.get("X-Cashu", "").strip():
        account_id = paid_with(request, ("oneshot", "token")).id
        return Payer(account_id, key_id=account_id)
    return request.app[PARTS].payments.key_payer(await _key_account(request))


def paid_with(request: web.Request, kinds: tuple[str, ...] = ("oneshot",)) -> Account:
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
