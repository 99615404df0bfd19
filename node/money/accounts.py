"""An account as the ledger reads it, what its audit flags, a key's cap on a reservation and a
reservation left by a node that died (see node.money.ledger)."""

from __future__ import annotations

from dataclasses import dataclass

from node.errors import Forbidden, NodeError, PaymentRequired


@dataclass(frozen=True)
class Account:
    id: int
    kind: str
    balance_msat: int
    reserved_msat: int
    mint: str | None
    credit_msat: int = 0

    @property
    def available_msat(self) -> int:
        """What requests may still reserve."""
        return self.balance_msat - self.reserved_msat

    @property
    def withdrawable_msat(self) -> int:
        """What may leave as ecash: never operator credit, never what requests hold."""
        return self.balance_msat - max(self.reserved_msat, self.credit_msat)

    def refusal(self, amount_msat: int, fee_msat: int = 0) -> NodeError | None:
        """Why a payout of `amount_msat` plus `fee_msat` cannot be taken, or None if it can."""
        total = amount_msat + fee_msat
        if total <= self.withdrawable_msat:
            return None
        can = f"{self.withdrawable_msat // 1000} sat can be withdrawn"
        fee = f" plus the mint's fee of {-(-fee_msat // 1000)} sat" if fee_msat else ""
        if total <= self.available_msat:  # only the operator's credit stands in the way
            return Forbidden(
                f"{can}, a payout's fee included ({amount_msat // 1000} sat{fee} asked): "
                f"{self.credit_msat} msat of the balance is operator credit, which pays for "
                "requests but is never paid out as ecash",
                code="credit_not_withdrawable",
                param="amount",
            )
        return PaymentRequired(
            f"insufficient balance: {amount_msat // 1000} sat{fee} is more than the "
            f"{self.withdrawable_msat} msat that can be withdrawn ({can})"
        )

    def untouched(self, credited_msat: int) -> bool:
        """Nothing spent or reserved since the account was credited `credited_msat` (the
        reservation's own write checks the same, see `ledger_pg.UNTOUCHED`)."""
        return not self.reserved_msat and self.balance_msat == credited_msat


@dataclass(frozen=True)
class Mismatch:
    """An account the audit flags. `check`: "balance" (balance_msat vs the sum of its entries),
    "reserved" (reserved_msat vs its reservations), "credit" (balance vs a credit outside it)."""

    account_id: int
    balance_msat: int
    entries_msat: int
    check: str = "balance"


@dataclass(frozen=True)
class Cap:
    """A key's spending limit: what its requests may cost from `since` on (charged and held).
    A key that owns its account (`whole_account`) counts every request paid from it, its
    sub-keys' too; a sub-key counts its own."""

    key_id: int
    limit_msat: int
    since: int
    after_entry: int = 0  # a reset: only charges entered after this entry count
    whole_account: bool = False


@dataclass(frozen=True)
class Orphan:
    """A reservation whose node instance died, as `resolve_orphans` settles it."""

    reservation_id: str
    account_id: int
    key_id: int | None
    model: str | None
    created_at: int
