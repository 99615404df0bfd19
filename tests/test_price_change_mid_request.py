"""A request keeps the price it was quoted and reserved at: the operator saving a new markup
while it runs changes the price of the requests that start afterwards, not of that one.

(A request reserved with one pricer and settled with the node's current one: a markup raised
mid-stream charged the stream at the new price.)
"""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import NodeHandle
from tests.support.admin_client import PASSWORD, AdminClient
from tests.support.pg import BOTH_BACKENDS
from tests.test_spine import EXACT, aclient, hello

pytestmark = BOTH_BACKENDS

BALANCE = 1_000_000


async def test_a_markup_saved_mid_stream_leaves_that_streams_charge_alone(
    make_node: Callable[..., NodeHandle],
) -> None:
    node = make_node(node={"admin_password": PASSWORD})
    key = node.new_key(BALANCE)
    slow = {"mock": {**EXACT["mock"], "pause_s": 1.5}}  # 2000 msat at markup 1
    stream = await aclient(node, key).chat.completions.create(
        **hello("test-slow", max_tokens=500), stream=True, extra_body=slow
    )
    chunks = [await anext(stream)]  # reserved and answering: now the upstream pauses
    async with AdminClient(node.url) as admin:
        await admin.login()
        await admin.send("PATCH", "/admin/api/settings", {"pricing": {"markup": 2.0}})
    chunks += [chunk async for chunk in stream]
    usage = chunks[-1].usage
    assert usage is not None and usage.model_extra
    assert usage.model_extra["cost_msat"] == 2000
    assert node.balance(key) == BALANCE - 2000
    # the requests after the save pay the new price
    answer = await aclient(node, key).chat.completions.create(
        **hello("test-model", max_tokens=500), extra_body=EXACT
    )
    assert answer.usage is not None and answer.usage.model_extra
    assert answer.usage.model_extra["cost_msat"] == 4000
    assert node.balance(key) == BALANCE - 6000
    node.assert_clean()
