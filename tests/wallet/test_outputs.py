"""How amounts are cut into denominations, and what can be paid out without a swap."""

from __future__ import annotations

from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st

from wallet.outputs import split_amount, spread_amount
from wallet.payout import plan_payout

POWERS = [1 << i for i in range(21)]  # what Nutshell's keysets offer, up to ~1M sat


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 1_000_000))
def test_a_spread_adds_up_in_the_keysets_denominations(amount: int) -> None:
    parts = spread_amount(amount, POWERS)
    assert sum(parts) == amount and set(parts) <= set(POWERS)
    assert len(parts) <= 2 * len(split_amount(amount, POWERS)) + 21


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.data())
def test_any_change_from_a_spread_is_paid_with_the_proofs_as_they_are(
    amount: int, data: st.DataObject
) -> None:
    held = [{"amount": a, "keyset_id": "00"} for a in spread_amount(amount, POWERS)]
    change = data.draw(st.integers(1, amount))
    plan = plan_payout(change, cast(Any, held), {"00": 0}, cast(Any, None))
    assert plan.direct and sum(r["amount"] for r in plan.inputs) == change
