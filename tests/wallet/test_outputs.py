"""How amounts are cut into denominations, and what can be paid out without a swap."""

from __future__ import annotations

from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st

from wallet.outputs import split_amount, spread_amount
from wallet.payout_plan import plan_payout, ranked

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
