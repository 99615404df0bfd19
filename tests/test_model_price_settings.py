"""[[models]] price settings: every price a source can give, the operator can write too."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import NodeHandle
from tests.support.httpfetch import fetch


def test_cached_and_reasoning_prices_are_settings_the_catalogue_shows(
    make_node: Callable[..., NodeHandle],
) -> None:
    """[[models]] cached_input_usd_per_mtok and reasoning_usd_per_mtok are settings of their
    own: a node configured with them starts, and /v1/models shows the prices it charges."""
    node = make_node(
        models=[
            {
                "id": "priced-apart",
                "input_usd_per_mtok": 1.0,
                "output_usd_per_mtok": 2.0,
                "cached_input_usd_per_mtok": 0.25,
                "reasoning_usd_per_mtok": 8.0,
            }
        ]
    )
    reply = fetch(f"{node.url}/v1/models/priced-apart")
    assert reply.status == 200, reply.body
    pricing = reply.json()["pricing"]
    assert (pricing["prompt"], pricing["completion"]) == (0.000001, 0.000002)
    assert pricing["input_cache_read"] == 0.00000025
    assert pricing["internal_reasoning"] == 0.000008
