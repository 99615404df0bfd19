"""X-Cashu change: paid back after the request, and recoverable with the paying token alone.

`Change` is the one owner of "what was not spent goes back": the payer of an X-Cashu request
(after its answer, or its error), the change routes and a retried request all pay through it.

A request paid with `X-Cashu` redeems the token into a one-shot account; whatever the request
did not cost is paid back as a token (`Change.pay`, purpose "change:<account>:<request id>").
Its payout's fee is the account's, like any payout's, and usually nil: the token was redeemed
into denominations from which the change is a set of proofs held as they are. What cannot be
paid as ecash (below 1 sat, or too little beside a payout's fee) stays in the account, shown by
`GET /v1/wallet/balance` and the listing below, and still pays for requests with the token.

A client whose answer was lost gets its change back with the token alone:
- `Change.listing`: every change of the payment (pending ones settled, an unpaid one paid now);
- `Change.retried`: a retry of the paid request under the same Idempotency-Key is answered
  with the first request's change (409 duplicate_request) instead of token_spent, or told to
  wait while the first one still runs (409 request_in_progress).
"""

from __future__ import annotations

import logging
from typing import Any

import wallet as cashu
from node.errors import Conflict, NodeError, NotFound, TooEarly
from node.money.books import purpose
from node.money.ledger import Account, Ledger, hash_key

log = logging.getLogger("nutgate.payments")

RETRY_AFTER_S = "2"


def idempotency_hash(given: str) -> str:
    """An Idempotency-Key as stored: hashed, so any length takes 32 characters."""
    return hash_key(given)[:32]


class Change:
    def __init__(self, ledger: Ledger, wallet: cashu.Wallet):
        self.ledger, self.wallet = ledger, wallet

    async def pay(self, account_id: int, request_id: str, *, v3: bool = False) -> str | None:
        """Pay back the most a one-shot account can pay once the payout's fee is in (None if
        that is nothing, or the payout failed: the money stays in the account, claimable);
        `v3`: as a cashuA token, for a client that paid with one."""
        what = purpose("change", account_id, request_id)
        try:
            done = await self.wallet.settle_payout(what)  # an earlier attempt left pending
            if done is not None:
                return done
            account = self.ledger.get(account_id)
            if account.withdrawable_msat < 1000:
                return None
            mint = self.mint_for(account.mint)
            return await self.wallet.send_up_to(account.withdrawable_msat, what, mint, v3=v3)
        except cashu.BudgetTooSmall:
            return None  # too little beside its fee: it stays, shown with the account's balance
        except (cashu.WalletError, NodeError) as exc:
            # A WalletError: before or after the amount is known. A NodeError (402): the
            # balance read above shrank while the payout awaited (the token, used as a Bearer
            # key meanwhile, reserved from it); that debit rolled back, nothing moved.
            log.warning("request %s: change not paid yet (%s); it stays claimable", request_id, exc)
            return None

    def mint_for(self, paid_with: str | None) -> str | None:
        """Change goes back in the mint the client paid with (a client may trust no other),
        while the node still trusts it; else from the mint holding the most (None)."""
        return paid_with if paid_with in self.wallet.trusted_mints else None

    async def listing(self, account: Account, listing_id: str) -> dict[str, Any]:
        """Every change paid from a one-shot account, and what remains in it. Change not paid
        yet is paid now (unless a request still runs on the account), under the id of the
        request that spent the account, or this listing's own once that one's change is paid."""
        spent_by, _, busy = self.ledger.spender(account.id)
        if not busy and account.withdrawable_msat >= 1000:
            named = spent_by or listing_id
            if self.wallet.paid(purpose("change", account.id, named)) is not None:
                named = listing_id  # its change was paid: this is money added since (a topup)
            await self.pay(account.id, named)
        prefix = purpose("change", account.id, "")
        changes, pending = [], []
        for what in self.ledger.payout_refs(account.id, prefix):
            try:
                await self.wallet.settle_payout(what)
            except cashu.WalletError:  # e.g. the mint is away: listed once it is settled
                pending.append(what[len(prefix) :])
                continue
            paid = self.wallet.paid(what)
            if paid is not None:
                changes.append(_change_json(what[len(prefix) :], paid))
        balance = self.ledger.get(account.id).balance_msat
        # `pending`: changes whose payout the mint has not settled yet (asked again, they come)
        return {"changes": changes, "balance_msat": balance, "pending": pending}

    async def swept(self, account: Account, sweep_id: str) -> cashu.PaidOut:
        """Routstr's lazy refund: the latest change of a one-shot payment, paying what is
        still due first. TooEarly while a request still runs on it (or the mint has not
        settled it yet); NotFound when there is no change."""
        if self.ledger.spender(account.id)[2]:  # a request still holds a reservation on it
            raise TooEarly(
                "Refund is pending: the request is still running; retry shortly",
                code="refund_pending",
                headers={"Retry-After": RETRY_AFTER_S},
            )
        listing = await self.listing(account, sweep_id)
        prefix = purpose("change", account.id, "")
        paid = [self.wallet.paid(prefix + c["request_id"]) for c in listing["changes"]]
        done = [p for p in paid if p is not None]
        if done:
            return done[-1]
        if listing["pending"]:
            raise TooEarly(
                "Refund is pending: the mint has not settled it yet; retry shortly",
                code="refund_pending",
                headers={"Retry-After": RETRY_AFTER_S},
            )
        raise NotFound("Refund not found: this payment left no change", code="refund_not_found")

    async def retried(self, account_id: int, key_hash: str | None) -> Conflict | None:
        """The answer to a paid request whose one-shot account is spent: if it came under the
        Idempotency-Key of the request that spent it, that request's change (or a wait while
        it runs); None otherwise (the token counts as spent)."""
        if key_hash is None:
            return None
        spent_by, remembered, busy = self.ledger.spender(account_id)
        if spent_by is None or remembered != key_hash:
            return None
        ids = {"X-Original-Request-Id": spent_by}
        if busy:
            return Conflict(
                f"request {spent_by}, paid with this token under this Idempotency-Key, is still "
                "running: retry shortly to get its change",
                code="request_in_progress",
                headers={"Retry-After": RETRY_AFTER_S, **ids},
            )
        change = await self.pay(account_id, spent_by)
        said = "its change is in the X-Cashu header" if change else "it left no change to pay back"
        headers = {**ids, "x-should-retry": "false"}  # an SDK must not retry this 409
        if change is not None:
            headers["X-Cashu"] = change
        return Conflict(
            f"this token already paid for request {spent_by} under this Idempotency-Key: {said}",
            code="duplicate_request",
            headers=headers,
        )


def _change_json(request_id: str, paid: cashu.PaidOut) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "cashu_token": paid.token,
        "amount": paid.amount_sat,
        "mint": paid.mint,
        "fee_sat": paid.fee_sat,
    }
