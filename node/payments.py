"""Who pays for a request, and how ecash moves in and out of accounts.

    Authorization: Bearer sk-…      an account made by /v1/wallet/create or `nutgate keys`
    Authorization: Bearer cashu…    the token is redeemed once into an account keyed by its hash
    X-Cashu: cashu…                 a one-shot account: redeemed, charged, the rest paid back

The wallet moves proofs; the ledger moves msat. They meet in the wallet's hooks below, which
run inside the wallet's own transactions, so a proof and the balance it backs change together.
Each movement has a `purpose` string naming the account it belongs to; the wallet keeps it with
the pending swap, so a swap finished after a crash credits the right account exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

import wallet as cashu
from node.errors import (
    Conflict,
    PaymentRequired,
    ServiceUnavailable,
    TokenRejected,
    Unauthorized,
    UpstreamError,
)
from node.ledger import DEPOSIT, REFUND, WITHDRAW, Ledger, hash_key
from wallet.store import Connection

if TYPE_CHECKING:
    from node.context import Node
    from node.proxy import MeteredCall

log = logging.getLogger("nutgate.payments")

TOKEN_PREFIXES = ("cashuA", "cashuB")
MINT_RETRY_AFTER_S = "5"


# --- purposes: what a wallet movement is for -----------------------------------------------


def purpose(kind: str, *parts: str | int) -> str:
    return ":".join([kind, *map(str, parts)])


def _parse(text: str) -> tuple[str, list[str]]:
    kind, *parts = text.split(":")
    return kind, parts


EARNINGS = "earnings"  # the operator's payouts: not an account, capped by `earnings_cap`


class LedgerHooks:
    """The wallet's credit/debit/refund hooks, applying movements to ledger accounts.

    An "earnings:…" payout touches no account; `earnings_cap(conn)` (assets − liabilities, in
    the wallet's own transaction) refuses one larger than what the node owns beyond its debts.
    """

    def __init__(self, ledger: Ledger, earnings_cap: Callable[[Connection], int] | None = None):
        self.ledger = ledger
        self.earnings_cap = earnings_cap

    def credit(self, conn: Connection, what: str, amount_msat: int, mint: str) -> None:
        kind, parts = _parse(what)
        if kind in ("token", "oneshot", "create"):  # a new account keyed by a hash
            account_kind = {"token": "token", "oneshot": "oneshot", "create": "key"}[kind]
            account_id = self.ledger.create_account(conn, parts[0], account_kind, mint)
        elif kind == "topup":
            account_id = int(parts[0])
        else:
            raise ValueError(f"unknown credit purpose {kind!r}")
        self.ledger.credit(conn, account_id, amount_msat, DEPOSIT, what)

    def debit(self, conn: Connection, what: str, amount_msat: int) -> None:
        if _parse(what)[0] == EARNINGS:
            cap = 0 if self.earnings_cap is None else self.earnings_cap(conn)
            if amount_msat > cap:
                raise Conflict(
                    f"{amount_msat} msat is more than the node's earnings ({cap} msat)",
                    code="exceeds_earnings",
                    param="amount",
                )
            return
        self.ledger.debit(conn, _account_of(what), amount_msat, WITHDRAW, what)

    def refund(self, conn: Connection, what: str, amount_msat: int) -> None:
        if _parse(what)[0] == EARNINGS:
            return  # the proofs came back to the wallet; no account was debited
        self.ledger.credit(conn, _account_of(what), amount_msat, REFUND, what)


def _account_of(what: str) -> int:
    kind, parts = _parse(what)
    if kind not in ("withdraw", "change"):
        raise ValueError(f"unknown payout purpose {kind!r}")
    return int(parts[0])


def token_spent() -> TokenRejected:
    return TokenRejected("this token has already been spent", code="token_spent")


@contextlib.contextmanager
def wallet_errors() -> Iterator[None]:
    """The wallet's errors as the node's, with a specific `code` each."""
    try:
        yield
    except cashu.TokenSpent as exc:
        raise token_spent() from exc
    except cashu.UntrustedMint as exc:
        raise TokenRejected(str(exc), code="mint_not_trusted") from exc
    except cashu.UnsupportedUnit as exc:
        raise TokenRejected(str(exc), code="unit_not_supported") from exc
    except cashu.TokenInvalid as exc:
        raise TokenRejected(f"invalid Cashu token: {exc}", code="token_invalid") from exc
    except cashu.MintUnavailable as exc:
        headers = {"Retry-After": MINT_RETRY_AFTER_S}
        message = "the mint cannot be reached; nothing was charged, try again shortly"
        if exc.maybe_sent:  # the mint may have taken the token: the node settles it on recovery
            headers["x-should-retry"] = "false"
            message = (
                "the mint stopped answering mid-payment; the node finishes it when the "
                "mint is back: retry with the same token later, it is not lost"
            )
        raise ServiceUnavailable(
            message,
            code="mint_unavailable",
            headers=headers,
        ) from exc
    except cashu.InsufficientFunds as exc:
        raise ServiceUnavailable(
            "the node cannot pay out this amount right now", code="payout_unavailable"
        ) from exc
    except cashu.PayoutPending as exc:
        raise Conflict(
            "a payout with this idempotency key is still being settled; retry soon",
            code="payout_pending",
            headers={"Retry-After": "2"},
        ) from exc
    except cashu.MintError as exc:
        raise UpstreamError(f"the mint refused: {exc}", code="mint_error") from exc


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


async def pay_change(node: Node, account_id: int, request_id: str) -> str | None:
    """Pay a one-shot account's whole sats back; None if there is nothing to pay or it failed."""
    what = purpose("change", account_id, request_id)
    try:
        done = await node.wallet.settle_payout(what)  # an earlier attempt left pending
        if done is not None:
            return done
        account = node.ledger.get(account_id)
        sats = account.available_msat // 1000
        if sats <= 0:
            return None
        return await node.wallet.send(sats, what, change_mint(node, account.mint))
    except (cashu.WalletError, PaymentRequired) as exc:
        # A WalletError: before or after the amount is known. PaymentRequired: the balance read
        # above shrank while `send` awaited (the token, used as a Bearer key meanwhile, reserved
        # from it); that debit rolled back, nothing moved.
        log.warning("request %s: change not paid yet (%s); it stays claimable", request_id, exc)
        return None


def change_mint(node: Node, paid_with: str | None) -> str | None:
    """Change goes back in the mint the client paid with (a client may trust no other), while
    the node still trusts it; else from the mint holding the most (None)."""
    return paid_with if paid_with in node.wallet.trusted_mints else None


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
        from node.web import REQUEST_ID

        if not is_token(token):
            raise TokenRejected(
                "X-Cashu must carry a cashuA… or cashuB… token", code="token_invalid"
            )
        key_hash, account_id = account_by_secret(request, self.node.ledger, token)
        what = purpose("oneshot", key_hash)
        if account_id is None:
            with wallet_errors(), contextlib.suppress(cashu.AlreadyCredited):
                await self.node.wallet.receive(token, what, keep_at_most=most_sat)
        # a retry after a lost answer may use the credit while no request has touched it
        account_id, credited = self._untouched(key_hash, what)
        return OneShotPayer(account_id, self.node, request[REQUEST_ID], credited)

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

    async def earlier_withdrawal(self, account_id: int, key: str) -> str | None:
        """The token of a withdrawal retried with the same Idempotency-Key (settled if pending)."""
        with wallet_errors():
            return await self.node.wallet.settle_payout(purpose("withdraw", account_id, key))

    async def withdraw(self, account_id: int, sats: int, mint: str | None, key: str) -> str:
        with wallet_errors():
            return await self.node.wallet.send(sats, purpose("withdraw", account_id, key), mint)
