"""Who pays for a request, and how ecash moves in and out of accounts.

    Authorization: Bearer sk-…      an account made by /v1/wallet/create or `nutgate keys`
    Authorization: Bearer cashu…    the token is redeemed once into an account keyed by its hash
    X-Cashu: cashu…                 a one-shot account: redeemed, charged, the rest paid back

How the wallet's movements reach the ledger is in `node.money.books` (purposes, hooks, errors); how
X-Cashu change is paid back and recovered, in `node.money.change`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

import wallet as cashu
from node.errors import PaymentRequired, TokenRejected, Unauthorized
from node.money.books import (
    EARNINGS,
    LedgerHooks,
    purpose,
    token_spent,
    wallet_errors,
)
from node.money.change import change_mint, idempotency_hash, pay_change, retried
from node.money.ledger import Ledger, hash_key

if TYPE_CHECKING:
    from node.context import Node
    from node.proxy.call import MeteredCall

# re-exported: the proxy, the app and the admin import them from here
__all__ = [
    "EARNINGS",
    "LedgerHooks",
    "OneShotPayer",
    "Payer",
    "Payments",
    "change_mint",
    "pay_change",
    "purpose",
    "token_spent",
    "wallet_errors",
]

log = logging.getLogger("nutgate.payments")

TOKEN_PREFIXES = ("cashuA", "cashuB")


# --- payers ----------------------------------------------------------------------------------


@dataclass
class Payer:
    account_id: int

    @property
    def untouched_msat(self) -> int | None:
        """For a token usable once: the balance the account must still have, untouched, when
        the request reserves (checked in the reservation's own write)."""
        return None

    async def finish(self, call: MeteredCall | None, in_band: bool = False) -> dict[str, Any]:
        """After settling: what to add to the answer (headers, or fields of the last chunk)."""
        return {}


@dataclass
class OneShotPayer(Payer):
    """X-Cashu: whatever the request did not cost goes back as a token."""

    node: Node
    request_id: str
    credited_msat: int

    @property
    def untouched_msat(self) -> int | None:
        return self.credited_msat

    async def finish(self, call: MeteredCall | None, in_band: bool = False) -> dict[str, Any]:
        token = await pay_change(self.node, self.account_id, self.request_id)
        if token is None:
            return {}
        return {"x_cashu": token} if in_band else {"X-Cashu": token}


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def is_token(value: str) -> bool:
    return value.startswith(TOKEN_PREFIXES)


_LOOKUP = web.RequestKey("account_lookup", tuple)  # (secret, key hash, account id | None)


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


class Payments:
    """Resolves payers and redeems tokens; one lock per token so a token redeems once."""

    def __init__(self, node: Node):
        self.node = node
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # key hash -> (lock, users)

    @contextlib.asynccontextmanager
    async def _one_at_a_time(self, key_hash: str) -> AsyncIterator[None]:
        """One redemption per token at a time; the lock lives while anyone holds or awaits it."""
        lock, users = self._locks.get(key_hash, (asyncio.Lock(), 0))
        self._locks[key_hash] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key_hash]
            if users == 1:
                del self._locks[key_hash]
            else:
                self._locks[key_hash] = (lock, users - 1)

    async def account_for_key(self, key: str) -> int:
        """The account behind a Bearer value: an sk- key, or a token redeemed on first use."""
        key_hash = hash_key(key)
        account_id = self.node.ledger.account_id(key_hash)
        return account_id if account_id is not None else await self._first_use(key, key_hash)

    async def _first_use(self, key: str, key_hash: str) -> int:
        """A Bearer value no account holds yet: a token is redeemed into one, once."""
        if not is_token(key):
            raise Unauthorized("unknown API key")
        ledger = self.node.ledger
        async with self._one_at_a_time(key_hash):
            if ledger.account_id(key_hash) is None:  # else a racing request redeemed it
                try:
                    with wallet_errors(), contextlib.suppress(cashu.AlreadyCredited):
                        # credited meanwhile by another node instance: the account is there
                        await self.node.wallet.receive(key, purpose("token", key_hash))
                except TokenRejected:
                    # Spent because another process (or an earlier attempt) redeemed it into
                    # this very account: use it. Spent elsewhere: the refusal stands.
                    if ledger.account_id(key_hash) is None:
                        raise
            account_id = ledger.account_id(key_hash)
        assert account_id is not None
        return account_id

    async def resolve(self, request: web.Request, quote: Callable[[], int]) -> Payer:
        """Who pays for this request; with no payment at all, a 402 with a NUT-24 request.

        `quote()` checks the request and returns the most it can cost. It runs only where it
        matters (an sk- key's request is checked when it is planned): before a token is
        redeemed, so bad input never spends one, and for the 402's amount.
        """
        x_cashu = request.headers.get("X-Cashu", "").strip()
        if x_cashu:
            return await self.one_shot(request, x_cashu, -(-quote() // 1000))
        key = bearer(request)
        if key is None:
            raise self.payment_request(quote())
        key_hash, account_id = account_by_secret(request, self.node.ledger, key)
        if account_id is not None:
            return Payer(account_id)
        if is_token(key):
            quote()
        return Payer(await self._first_use(key, key_hash))

    async def one_shot(self, request: web.Request, token: str, most_sat: int) -> OneShotPayer:
        from node.http.web import REQUEST_ID

        if not is_token(token):
            raise TokenRejected(
                "X-Cashu must carry a cashuA… or cashuB… token", code="token_invalid"
            )
        key_hash, account_id = account_by_secret(request, self.node.ledger, token)
        what = purpose("oneshot", key_hash)
        if account_id is None:
            with wallet_errors(), contextlib.suppress(cashu.AlreadyCredited):
                await self.node.wallet.receive(token, what, keep_at_most=most_sat)
        given = request.headers.get("Idempotency-Key", "").strip()
        idem = idempotency_hash(given) if given else None
        account = self.node.ledger.find(key_hash)
        receipt = self.node.wallet.credited(what)
        if account is None or receipt is None:
            raise token_spent()
        # a retry after a lost answer may use the credit while no request has touched it
        if not account.untouched(receipt.amount_msat):
            raise await retried(self.node, account.id, idem) or token_spent()
        if idem is not None:
            self.node.ledger.remember_key(
                account.id, receipt.amount_msat, idem, request[REQUEST_ID]
            )
        return OneShotPayer(account.id, self.node, request[REQUEST_ID], receipt.amount_msat)

    def _untouched(self, key_hash: str, what: str) -> tuple[int, int]:
        """The account a redemption made and its credit, if nothing has been spent or reserved
        from it since; otherwise the token counts as spent."""
        account = self.node.ledger.find(key_hash)
        receipt = self.node.wallet.credited(what)
        if account is None or receipt is None or not account.untouched(receipt.amount_msat):
            raise token_spent()
        return account.id, receipt.amount_msat

    def payment_request(self, need_msat: int) -> PaymentRequired:
        sats = max(1, -(-need_msat // 1000))
        creq = cashu.encode_creq_a(
            cashu.PaymentRequest(amount=sats, unit="sat", mints=self.node.settings.cashu.mints)
        )
        return PaymentRequired(
            f"payment required: send a Cashu token of at least {sats} sat as the API key "
            "or in the X-Cashu header",
            code="payment_required",
            headers={"X-Cashu": creq},
        )

    async def create_key(self, token: str) -> tuple[str, int]:
        """/v1/wallet/create: an sk- key funded by the token.

        The key is derived from the token's proofs under a node secret, so a client whose
        answer was lost (a crash, a mint that stopped answering) retries with the same token
        and gets the same key, its value credited once. It is handed out again only while the
        account is untouched: once spent from, the key is the only way in.
        """
        with wallet_errors():
            key = "sk-" + self.node.wallet.claim_secret(token)
            key_hash = hash_key(key)
            what = purpose("create", key_hash)
            if self.node.ledger.account_id(key_hash) is None:
                with contextlib.suppress(cashu.AlreadyCredited):  # a racing or earlier attempt
                    await self.node.wallet.receive(token, what)
        return key, self._untouched(key_hash, what)[0]

    async def topup(self, account_id: int, token: str) -> int:
        """msat added; a retry of a topup already credited answers the same (idempotent)."""
        with wallet_errors():
            try:
                receipt = await self.node.wallet.receive(
                    token, purpose("topup", account_id, hash_key(token))
                )
            except cashu.AlreadyCredited as done:
                receipt = done.receipt
        return int(receipt.amount_msat)

    async def earlier_withdrawal(self, account_id: int, key: str) -> cashu.PaidOut | None:
        """A withdrawal retried with the same Idempotency-Key (settled first if pending)."""
        what = purpose("withdraw", account_id, key)
        with wallet_errors():
            await self.node.wallet.settle_payout(what)
        return self.node.wallet.paid(what)

    async def withdraw(
        self, account_id: int, sats: int | None, mint: str | None, key: str
    ) -> cashu.PaidOut:
        """Pay `sats` out of the account (None: the most it can, its payout's fee beside it).
        The account is debited the amount plus the payout's fee, or nothing if it is refused."""
        what = purpose("withdraw", account_id, key)
        account = self.node.ledger.get(account_id)
        refusal = account.refusal(max(sats or 0, 1) * 1000)
        if refusal is not None:  # before any mint call; the payout's debit checks it again
            raise refusal
        with wallet_errors():
            if sats is None:
                await self.node.wallet.send_up_to(account.withdrawable_msat, what, mint)
            else:
                await self.node.wallet.send(sats, what, mint)
        paid = self.node.wallet.paid(what)
        assert paid is not None  # send returned: the payout is done
        return paid
