"""How amounts are cut into denominations, what can be paid out without a swap, and what a
payout's plan takes from the proofs held (its fee included)."""

from __future__ import annotations

from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st

from wallet.errors import BudgetTooSmall, InsufficientFunds
from wallet.outputs import input_fee, split_amount, spread_amount
from wallet.payout_plan import plan_most, plan_payout, ranked

POWERS = [1 << i for i in range(21)]  # what Nutshell's keysets offer, up to ~1M sat


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 1_000_000))
def test_a_spread_adds_up_in_the_keysets_denominations(amount: int) -> None:
    parts = spread_amount(amount, POWERS)
    assert sum(parts) == amount and set(parts) <= set(POWERS)
    assert len(parts) <= 2 * amount.bit_length()  # 1, 2, 4, … then at most as many again


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 5000), st.data())
def test_any_change_after_keeping_up_to_the_spread_is_paid_as_it_is(
    amount: int, data: st.DataObject
) -> None:
    """A token of `amount` redeemed with the first `spread` sat spread (as X-Cashu does with
    the request's most possible cost): whatever the request costs up to that, the change is a
    set of the new proofs."""
    spread = data.draw(st.integers(0, amount))
    parts = spread_amount(spread, POWERS) if spread else []
    held = [{"amount": a, "keyset_id": "00"} for a in parts + split_amount(amount - spread, POWERS)]
    kept = data.draw(st.integers(0, min(spread, amount - 1)))
    plan = plan_payout(amount - kept, ranked(cast(Any, held)), {"00": 100}, cast(Any, None))
    assert plan.direct and sum(r["amount"] for r in plan.inputs) == amount - kept
    assert plan.fee_sat == 0  # at a fee mint too: no swap, no fee


HELD = st.lists(st.sampled_from(POWERS[:8]), min_size=1, max_size=30)


class _Keyset:  # what the planner reads of the outputs' keyset
    amounts = POWERS


def _held(amounts: list[int], ppk: int) -> tuple[list[Any], dict[str, int]]:
    return ranked(cast(Any, [{"amount": a, "keyset_id": "00"} for a in amounts])), {"00": ppk}


@settings(max_examples=300, deadline=None)
@given(HELD, st.integers(1, 300), st.sampled_from([0, 100, 1000, 1500]))
def test_a_payout_plan_balances_at_the_mint(amounts: list[int], amount: int, ppk: int) -> None:
    """Inputs = the token + our change + the mint's fee on the inputs (0 without a swap)."""
    held, fees = _held(amounts, ppk)
    try:
        plan = plan_payout(amount, held, fees, cast(Any, _Keyset))
    except InsufficientFunds as short:
        assert short.amount_sat == amount and sum(amounts) < amount + short.fee_sat
        return
    total = sum(r["amount"] for r in plan.inputs)
    if plan.direct:
        assert total == amount and plan.fee_sat == 0
    else:
        assert sum(plan.send) == amount and plan.fee_sat == input_fee([ppk] * len(plan.inputs))
        assert total == amount + sum(plan.change) + plan.fee_sat


@settings(max_examples=300, deadline=None)
@given(HELD, st.integers(0, 300_000), st.sampled_from([0, 100, 1000, 1500]))
def test_the_most_a_budget_pays_is_the_largest_amount_whose_fee_fits(
    amounts: list[int], budget_msat: int, ppk: int
) -> None:
    held, fees = _held(amounts, ppk)
    budget = budget_msat // 1000

    def fits(n: int) -> bool:
        try:
            plan = plan_payout(n, held, fees, cast(Any, _Keyset))
        except InsufficientFunds:
            return False
        return plan.amount + plan.fee_sat <= budget and plan.fee_sat <= plan.amount

    try:
        plan = plan_most(budget_msat, held, fees, cast(Any, _Keyset))
    except BudgetTooSmall:
        assert not any(fits(n) for n in range(1, budget + 1))
        return
    except InsufficientFunds:
        assert sum(amounts) < budget or not any(fits(n) for n in range(1, budget + 1))
        return
    assert fits(plan.amount) and not any(fits(n) for n in range(plan.amount + 1, budget + 1))
