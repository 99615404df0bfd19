"""Which proofs pay out a token, and what the mint's input fees (NUT-02) add to it.

A payout of N sat is a token worth exactly N: its receiver pays its own fee when it redeems it,
as any receiver does. The only fee of the payout itself is the node's swap fee on the inputs,
and it is 0 when some proofs held sum to N exactly (they are the token as they are). Whoever
asked for the payout pays that fee: the wallet's debit hook gets it beside the amount.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wallet.errors import BudgetTooSmall, InsufficientFunds
from wallet.keysets import Keyset
from wallet.outputs import input_fee, split_amount
from wallet.store import Row

MOST_TRIES = 64  # amounts tried below a budget before giving up (fees are a few sat at most)


@dataclass(frozen=True)
class PayoutPlan:
    amount: int  # sat: the token's value
    inputs: list[Row]
    send: list[int]  # the token's output amounts; empty when the inputs are the token
    change: list[int]
    fee_sat: int  # the mint's fee on our swap's inputs: 0 for a direct payout

    @property
    def direct(self) -> bool:
        return not self.send


def ranked(held: Sequence[Row]) -> list[Row]:
    return sorted(held, key=lambda r: r["amount"], reverse=True)


def plan_payout(
    amount: int, held: Sequence[Row], ppk: dict[str, int], out_ks: Keyset
) -> PayoutPlan:
    """Proofs held that sum to `amount` if the greedy pick finds them (for powers of two it
    does whenever they exist), else the fewest large proofs that cover `amount` plus their own
    input fee, swapped for the token's outputs and our change. `held` ranked largest first."""
    picked, total = [], 0
    for r in held:
        if total + r["amount"] <= amount:
            picked.append(r)
            total += r["amount"]
    if picked and total == amount:
        return PayoutPlan(amount, picked, [], [], 0)
    picked, total, ppk_sum = [], 0, 0
    for r in held:
        if picked and total >= amount + input_fee([ppk_sum]):
            break
        picked.append(r)
        total += r["amount"]
        ppk_sum += ppk[r["keyset_id"]]
    fee = input_fee([ppk_sum])
    change = total - amount - fee
    if change < 0:
        raise InsufficientFunds(
            f"{total} sat held cannot pay {amount} sat plus a {fee} sat fee", amount, fee
        )
    send = split_amount(amount, out_ks.amounts)
    return PayoutPlan(
        amount, picked, send, split_amount(change, out_ks.amounts) if change else [], fee
    )


def plan_most(
    budget_msat: int, held: Sequence[Row], ppk: dict[str, int], out_ks: Keyset
) -> PayoutPlan:
    """The largest payout whose amount plus fee fits `budget_msat`, its fee not above its
    amount; BudgetTooSmall when there is none. `held` ranked largest first."""
    budget = budget_msat // 1000
    if budget < 1:
        raise BudgetTooSmall(budget_msat, 1, 0)
    if sum(r["amount"] for r in held) < budget:
        raise InsufficientFunds(f"the proofs held cannot pay out {budget} sat", budget)
    smallest: PayoutPlan | None = None
    for amount in range(budget, max(0, budget - MOST_TRIES), -1):
        try:
            plan = plan_payout(amount, held, ppk, out_ks)
        except InsufficientFunds:  # its fee does not fit beside it in what is held
            continue
        if plan.amount + plan.fee_sat <= budget and plan.fee_sat <= plan.amount:
            return plan
        smallest = plan
    if smallest is None:
        raise InsufficientFunds(f"the proofs held cannot pay out of {budget_msat} msat", budget)
    raise BudgetTooSmall(budget_msat, smallest.amount, smallest.fee_sat)
