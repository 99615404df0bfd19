"""The wallet's exceptions: one tree, so callers can catch `WalletError` and map the leaves.

WalletError
 ├── TokenInvalid        malformed token / request / proof (never anything else for bad input)
 ├── TokenSpent          the mint says the proofs are already spent (code 11001)
 │    └── AlreadyCredited   this purpose was already credited (carries the first receipt)
 ├── UntrustedMint       the token's mint is not in the trust list (no network contact made)
 ├── UnsupportedUnit     a unit other than "sat"
 ├── MintUnavailable     network error, timeout or 5xx: retry later, nothing was lost
 │    └── MintAnswerGarbled  a swap answered with junk: the mint may have acted (settle by restore)
 ├── MintError           any other refusal by the mint (`code`, `detail`)
 ├── InsufficientFunds   not enough unspent proofs for a payout
 ├── BudgetTooSmall      no payout of at least 1 sat fits a budget once its fee is added
 └── PayoutPending       a payout for this purpose is still unresolved (recover() finishes it)
"""

from __future__ import annotations

from typing import Any


class WalletError(Exception):
    """Base of every error the wallet raises on purpose."""


class TokenInvalid(WalletError):
    pass


class TokenSpent(WalletError):
    pass


class AlreadyCredited(TokenSpent):
    def __init__(self, message: str, receipt: Any) -> None:
        super().__init__(message)
        self.receipt = receipt


class UntrustedMint(WalletError):
    def __init__(self, mint: str) -> None:
        super().__init__(f"mint not trusted: {mint}")
        self.mint = mint


class UnsupportedUnit(WalletError):
    def __init__(self, unit: str) -> None:
        super().__init__(f"unit not supported: {unit!r} (only 'sat')")
        self.unit = unit


class MintUnavailable(WalletError):
    def __init__(self, message: str, *, maybe_sent: bool = True) -> None:
        super().__init__(message)
        # False when the connection was never made: the mint cannot have acted on the request
        self.maybe_sent = maybe_sent


class MintAnswerGarbled(MintUnavailable):
    """The mint answered a swap, but not with what NUT-03 says: it may have spent the inputs
    and signed our outputs, so the pending row is kept and settled by restore (NUT-09)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, maybe_sent=True)


KEYSET_ERRORS = {12001, 12002}  # NUT-02: keyset unknown / inactive


class MintError(WalletError):
    def __init__(self, code: int | None, detail: str) -> None:
        super().__init__(f"mint refused (code {code}): {detail}")
        self.code = code
        self.detail = detail

    @property
    def keyset_refused(self) -> bool:
        """The mint refused a keyset we took for active: our cached listing is stale."""
        return self.code in KEYSET_ERRORS


class InsufficientFunds(WalletError):
    """The proofs held cannot pay a payout of `amount_sat` plus its `fee_sat` (as planned; 0
    when unknown), whoever asked for it."""

    def __init__(self, message: str, amount_sat: int = 0, fee_sat: int = 0) -> None:
        super().__init__(message)
        self.amount_sat = amount_sat
        self.fee_sat = fee_sat


class BudgetTooSmall(WalletError):
    """`send_up_to`: every amount the budget could pay needs a swap whose input fee does not
    fit beside it (or exceeds the amount). `fee_sat` is the fee of the smallest one tried."""

    def __init__(self, budget_msat: int, amount_sat: int, fee_sat: int) -> None:
        super().__init__(
            f"{budget_msat} msat cannot pay out {amount_sat} sat plus its fee of {fee_sat} sat"
        )
        self.budget_msat = budget_msat
        self.amount_sat = amount_sat
        self.fee_sat = fee_sat


class PayoutPending(WalletError):
    pass
