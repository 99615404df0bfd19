"""Where the wallet and the ledger meet: purposes, the wallet's hooks, the wallet's errors.

The wallet moves proofs; the ledger moves msat. The hooks below run inside the wallet's own
transactions, so a proof and the balance it backs change together. Each movement has a
`purpose` string naming the account it belongs to ("topup:<account>:<token hash>",
"withdraw:<account>:<key>", "change:<account>:<request id>", "earnings:<key>", …); the wallet
keeps it with the pending swap or payout, so one finished after a crash moves the right
account exactly once.

Whoever moves the money pays its fees: a payout's debit is its amount plus the mint's fee on
the node's swap for it (`debit(conn, purpose, amount_msat, fee_msat)`), taken from the account
paid out of, or for the operator's earnings from what the node owns beyond its debts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import wallet as cashu
from node.errors import (
    BadRequest,
    Conflict,
    PaymentRequired,
    ServiceUnavailable,
    TokenRejected,
    UpstreamError,
)
from node.money.ledger import DEPOSIT, REFUND, WITHDRAW, Ledger
from wallet.store import Connection

MINT_RETRY_AFTER_S = "5"
EARNINGS = "earnings"  # the operator's payouts: not an account, capped by `earnings_cap`


def purpose(kind: str, *parts: str | int) -> str:
    return ":".join([kind, *map(str, parts)])


def _parse(text: str) -> tuple[str, list[str]]:
    kind, *parts = text.split(":")
    return kind, parts


def sat(msat: int) -> str:
    """msat as sat for a message: whole sats plain, else with its decimals."""
    return str(msat // 1000) if msat % 1000 == 0 else f"{msat / 1000:.3f}"


class LedgerHooks:
    """The wallet's credit/debit/refund hooks, applying movements to ledger accounts.

    An "earnings:…" payout touches no account; `earnings_cap(conn)` (assets − liabilities, in
    the wallet's own transaction) refuses one whose amount plus fee is more than the node owns
    beyond its debts.
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

    def debit(self, conn: Connection, what: str, amount_msat: int, fee_msat: int) -> None:
        if fee_msat > amount_msat:
            raise BadRequest(
                f"paying out {sat(amount_msat)} sat would cost {sat(fee_msat)} sat in mint fees, "
                "more than the amount: ask for a larger amount (nothing was taken)",
                code="fees_exceed_amount",
                param="amount",
            )
        if _parse(what)[0] == EARNINGS:
            cap = 0 if self.earnings_cap is None else self.earnings_cap(conn)
            if amount_msat + fee_msat > cap:
                fee = f" plus the mint's fee of {sat(fee_msat)} sat" if fee_msat else ""
                raise Conflict(
                    f"{sat(amount_msat)} sat{fee} is more than the node's earnings "
                    f"({sat(cap)} sat)",
                    code="exceeds_earnings",
                    param="amount",
                )
            return
        self.ledger.debit(conn, _account_of(what), amount_msat, WITHDRAW, what, fee_msat)

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
