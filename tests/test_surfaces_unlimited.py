"""[limits] unlimited_above_msat: keys holding that much are not rate limited; they still pay."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import NodeHandle
from tests.test_ratelimit import THREE_A_MINUTE, models
from tests.test_spine import client, hello

RICH = 2_000_000


def test_a_key_holding_enough_is_not_rate_limited(make_node: Callable[..., NodeHandle]) -> None:
    node = make_node(limits={**THREE_A_MINUTE, "unlimited_above_msat": RICH})
    rich, poor = node.new_key(RICH), node.new_key(RICH - 1)
    assert [models(node, rich).status for _ in range(6)] == [200] * 6
    assert [models(node, poor).status for _ in range(4)] == [200, 200, 200, 429]
    answer = client(node, rich).chat.completions.create(**hello(max_tokens=5))
    assert answer.usage is not None and node.balance(rich) < RICH  # credits still apply
    below = [models(node, rich).status for _ in range(4)]
    assert below == [200, 200, 200, 429]  # below the mark now: limited again
    node.assert_clean()
