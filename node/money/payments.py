"""Who pays for a request, and how ecash moves in and out of accounts.

    Authorization: Bearer sk-…      an account made by /v1/wallet/create or `nutgate keys`
    Authorization: Bearer cashu…    the token is redeemed once into an account keyed by its hash
    X-Cashu: cashu…                 a one-shot account: redeemed, charged, the rest paid back

The HTTP edge reads those headers into a `Presented` (node.http.credentials); `Payments` takes
it from there without seeing the request. How the wallet's movements reach the ledger is in
`node.money.books`; how X-Cashu change is paid back and recovered, in `node.money.change`. The
wallet's errors become the node's here (`wallet_errors`), each with a specific `code`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import wallet as cashu
from node.errors import (
    Conflict,
    PaymentRequired,
    ServiceUnavailable,
    TokenRejected,
    Unauthorized,
    UpstreamError,
)
from node.money.books import purpose, sat
from node.money.change import Change
from node.money.idempotency import check_payout
from node.money.keys import KeyRules, Keys
from node.money.ledger import Account, Ledger, hash_key

TOKEN_PREFIXES = ("cashuA", "cashuB")
MINT_RETRY_AFTER_S = "5"


def is_token(value: str) -> bool:
    return value.startswith(TOKEN_PREFIXES)


@dataclass(frozen=True)
class Presented:
    """What a request brings to pay with, read from its headers at the HTTP edge."""

    request_id: str
    x_cashu: str = ""  # the X-Cashu header: a one-shot payment, which pays first
    bearer: str | None = None  # the Authorization: Bearer value
    key_hash: str = ""  # of the credential that pays (X-Cashu, else Bearer), if any
    account_id: int | None = None  # the account that credential opens already, if any
    idempotency_hash: str | None = None  # the Idempotency-Key, hashed (idempotency_hash)

    @property
    def owner(self) -> int | None:
        """The account that will pay, if one exists already, without redeeming anything; an
        X-Cashu payment owns nothing (it gets an account of its own per token)."""
        return None if self.x_cashu else self.account_id


# --- payers ----------------------------------------------------------------------------------


@dataclass
class Payer:
    account_id: int  # whose balance pays: a sub-key's parent
    key_id: int | None = field(default=None, kw_only=True)  # the account of the key used
    key: KeyRules | None = field(default=None, kw_only=True)  # that key's rules, if any

    @property
    def owner_id(self) -> int:
        """The account the request is made as: the key's own (a sub-key's), else the payer."""
        return self.account_id if self.key_id is None else self.key_id

    @property
    def untouched_msat(self) -> int | None:
        """For a token usable once: the balance the account must still have, untouched, when
        the request reserves (checked in the reservation's own write)."""
        return None

    async def finish(self, in_band: bool = False) -> dict[str, Any]:
        """After settling: what to add to the answer (headers, or fields of the last chunk)."""
        return {}


@dataclass
class OneShotPayer(Payer):
    """X-Cashu: whatever the request did not cost goes back as a token."""

    change: Change
    request_id: str
    credited_msat: int
    v3: bool = False  # paid with a cashuA token: the change goes back as one

    @property
    def untouched_msat(self) -> int | None:
        return self.credited_msat

    async def finish(self, in_band: bool = False) -> dict[str, Any]:
        token = await self.change.pay(self.account_id, self.request_id, v3=self.v3)
        if token is None:
            return {}
        return {"x_cashu": token} if in_band else {"X-Cashu": token}


class Payments:
    """Resolves payers and redeems tokens; one lock per token so a token redeems once."""

    def __init__(
        self,
        ledger: Ledger,
        wallet: cashu.Wallet,
        mints: list[str],
        keys: Keys,
        after: Payments | None = None,
    ):
        """`after`: the Payments this one replaces (a settings change), whose token locks it
        takes over, so a redemption running on the old one still excludes the same token's."""
        self.ledger, self.wallet, self.mints, self.keys = ledger, wallet, mints, keys
        self.change = Change(ledger, wallet)
        # key hash -> (lock, users)
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {} if after is None else after._locks

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
        account_id = self.ledger.account_id(key_hash)
        return account_id if account_id is not None else await self._first_use(key, key_hash)

    async def _first_use(self, key: str, key_hash: str) -> int:
        """A Bearer value no account holds yet: a token is redeemed into one, once."""
        if not is_token(key):
            raise Unauthorized("unknown API key")
        async with self._one_at_a_time(key_hash):
            if self.ledger.account_id(key_hash) is None:  # else a racing request redeemed it
                try:
                    with wallet_errors(), contextlib.suppress(cashu.AlreadyCredited):
                        # credited meanwhile by another node instance: the account is there
                        await self.wallet.receive(key, purpose("token", key_hash))
                except TokenRejected:
                    # Spent because another process (or an earlier attempt) redeemed it into
                    # this very account: use it. Spent elsewhere: the refusal stands.
                    if self.ledger.account_id(key_hash) is None:
                        raise
            account_id = self.ledger.account_id(key_hash)
        assert account_id is not None
        return account_id

    async def resolve(
        self,
        presented: Presented,
        quote: Callable[[], int],
        affords: Callable[[int], None] | None = None,
    ) -> Payer:
        """Who pays for this request; with no payment at all, a 402 with a NUT-24 request.

        `quote()` checks the request and returns the most it can cost. It runs only where it
        matters (an sk- key's request is checked when it is planned): before a token is
        redeemed, so bad input never spends one, and for the 402's amount. `affords(msat)`
        raises if the request cannot run on that much: an X-Cashu token's face value is put
        to it before any mint call, so a token too small is refused untouched (NUT-24).
        """
        if presented.x_cashu:
            return await self.one_shot(presented, -(-quote() // 1000), affords)
        key = presented.bearer
        if key is None:
            raise self.payment_request(quote())
        if presented.account_id is not None:
            rules = await self.keys.read(presented.account_id)  # a paid request's one read, if any
            return _payer(presented.account_id, rules)
        if is_token(key):
            quote()
        account_id = await self._first_use(key, presented.key_hash)
        return Payer(account_id, key_id=account_id)

    def key_payer(self, account_id: int) -> Payer:
        """The payer behind a key's account: its parent's balance for a sub-key."""
        return _payer(account_id, self.keys.get(account_id))

    async def one_shot(
        self, presented: Presented, most_sat: int, affords: Callable[[int], None] | None = None
    ) -> OneShotPayer:
        token, key_hash = presented.x_cashu, presented.key_hash
        if not is_token(token):
            raise TokenRejected(
                "X-Cashu must carry a cashuA… or cashuB… token", code="token_invalid"
            )
        what = purpose("oneshot", key_hash)
        if presented.account_id is None:
            with wallet_errors():
                parsed = cashu.parse_token(token)
            if affords is not None and parsed.unit == "sat":
                affords(parsed.amount * 1000)  # its face value, before any mint call
            with wallet_errors(), contextlib.suppress(cashu.AlreadyCredited):
                await self.wallet.receive(token, what, keep_at_most=most_sat)
        idem = presented.idempotency_hash
        account = self.ledger.find(key_hash)
        receipt = self.wallet.credited(what)
        if account is None or receipt is None:
            raise token_spent()
        # a retry after a lost answer may use the credit while no request has touched it
        if not account.untouched(receipt.amount_msat):
            raise await self.change.retried(account.id, idem) or token_spent()
        if idem is not None:
            self.ledger.remember_key(account.id, receipt.amount_msat, idem, presented.request_id)
        return OneShotPayer(
            account.id,
            self.change,
            presented.request_id,
            receipt.amount_msat,
            v3=token.startswith("cashuA"),
            key_id=account.id,
        )

    def _untouched(self, key_hash: str, what: str) -> tuple[int, int]:
        """The account a redemption made and its credit, if nothing has been spent or reserved
        from it since; otherwise the token counts as spent."""
        account = self.ledger.find(key_hash)
        receipt = self.wallet.credited(what)
        if account is None or receipt is None or not account.untouched(receipt.amount_msat):
            raise token_spent()
        return account.id, receipt.amount_msat

    def payment_request(self, need_msat: int) -> PaymentRequired:
        sats = max(1, -(-need_msat // 1000))
        creq = cashu.encode_creq_a(cashu.PaymentRequest(amount=sats, unit="sat", mints=self.mints))
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
            key = "sk-" + self.wallet.claim_secret(token)
            key_hash = hash_key(key)
            what = purpose("create", key_hash)
            if self.ledger.account_id(key_hash) is None:
                with contextlib.suppress(cashu.AlreadyCredited):  # a racing or earlier attempt
                    await self.wallet.receive(token, what)
        return key, self._untouched(key_hash, what)[0]

    async def topup(self, account_id: int, token: str) -> int:
        """msat added; a retry of a topup already credited answers the same (idempotent)."""
        with wallet_errors():
            try:
                receipt = await self.wallet.receive(
                    token, purpose("topup", account_id, hash_key(token))
                )
            except cashu.AlreadyCredited as done:
                receipt = done.receipt
        return int(receipt.amount_msat)

    async def earlier_withdrawal(
        self, account_id: int, key: str, sats: int | None, mint: str | None
    ) -> cashu.PaidOut | None:
        """A withdrawal retried with the same Idempotency-Key (settled first if pending); a
        409 if that key paid an invoice instead, a 422 if it paid another amount or mint."""
        what = purpose("withdraw", account_id, key)
        with wallet_errors():
            await self.wallet.settle_payout(what)
        melted = self.wallet.melted(what)
        if melted is not None and melted.state != "failed":
            raise key_reused("a Lightning payment")
        paid = self.wallet.paid(what)
        return None if paid is None else check_payout(paid, sats, mint)

    async def withdraw(
        self, account_id: int, sats: int | None, mint: str | None, key: str
    ) -> cashu.PaidOut:
        """Pay `sats` out of the account (None: the most it can, its payout's fee beside it),
        in `mint`, else in the account's own mint (a wallet takes no other mint's token for its
        own), else where the node holds enough. The account is debited the amount plus the
        payout's fee, or nothing if it is refused."""
        what = purpose("withdraw", account_id, key)
        account = self.ledger.get(account_id)
        refusal = account.refusal(max(sats or 0, 1) * 1000)
        if refusal is not None:  # before any mint call; the payout's debit checks it again
            raise refusal
        own = self.change.mint_for(account.mint) if mint is None else None
        with wallet_errors():
            try:
                await self._send(account, sats, what, mint or own)
            except cashu.InsufficientFunds:
                if own is None:
                    raise
                await self._send(account, sats, what, None)  # its mint holds too little now
        paid = self.wallet.paid(what)
        assert paid is not None  # send returned: the payout is done (maybe a racing retry's)
        return check_payout(paid, sats, mint)

    async def _send(self, account: Account, sats: int | None, what: str, mint: str | None) -> None:
        if sats is None:
            await self.wallet.send_up_to(account.withdrawable_msat, what, mint)
        else:
            await self.wallet.send(sats, what, mint)


# --- the wallet's errors ---------------------------------------------------------------------


def key_reused(paid: str) -> Conflict:
    """A payout under an Idempotency-Key that already named another kind of payout."""
    return Conflict(
        f"this Idempotency-Key already named {paid}, which a retry gets back only in the same "
        "form: send a new key for a new payout (nothing was taken)",
        code="idempotency_key_reused",
    )


def token_spent() -> TokenRejected:
    # "token already spent": the words Routstr's clients look for in this refusal
    return TokenRejected(
        "token already spent: this token has already been spent", code="token_spent"
    )


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
    except cashu.BudgetTooSmall as exc:
        raise PaymentRequired(
            f"insufficient balance: {sat(exc.budget_msat)} sat cannot pay out "
            f"{exc.amount_sat} sat plus the mint's fee of {exc.fee_sat} sat for paying it out; "
            "it stays in the account (it still pays for requests)"
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


def _payer(account_id: int, rules: KeyRules | None) -> Payer:
    parent = rules.parent_id if rules is not None else None
    return Payer(parent if parent is not None else account_id, key_id=account_id, key=rules)
