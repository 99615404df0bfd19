"""NUT-24 as a cashu-ts client lives it: call, get a 402 whose X-Cashu holds a NUT-18 payment
request, decode it with cashu-ts, pay it with a token in X-Cashu, take the change.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import NodeHandle
from tests.interop.flows import HELLO, Answer, change_due, chat, http, stream_chat
from tests.support.cashu_ts import CashuTs
from tests.support.mints import MintInfo


async def unpaid(node: NodeHandle, **body: Any) -> Answer:
    return await http(node, "POST", "/v1/chat/completions", json={**HELLO, **body})


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_cashu_ts_decodes_and_pays_the_402_request(
    wallet_node: NodeHandle, cashu_ts: CashuTs, mint: MintInfo, stream: bool
) -> None:
    """With room for 1000 tokens the call may cost 3 sat: the change of a 10-token answer is 2."""
    answer = await unpaid(wallet_node, stream=stream, max_tokens=1000)
    assert answer.status == 402 and answer.body["error"]["code"] == "payment_required"
    request = await cashu_ts.decode_request(answer.headers["X-Cashu"])
    assert request.unit == "sat" and request.mints == [mint.url]
    assert request.amount is not None and request.amount >= 1
    token = await cashu_ts.pay_request(answer.headers["X-Cashu"])
    pay = stream_chat if stream else chat
    paid = await pay(wallet_node, {"X-Cashu": token}, max_tokens=1000)
    assert paid.change is not None
    due = change_due(request.amount, paid.cost_msat)
    assert due > 0 and await cashu_ts.receive(mint.url, paid.change) == due
    wallet_node.assert_clean()


@pytest.fixture
def fee_node(make_node: Any, mint: MintInfo) -> NodeHandle:
    """Every request costs at least 5 sat: a 2-sat token is worth less than any of them."""
    node: NodeHandle = make_node(cashu={"mints": [mint.url]}, pricing={"request_fee_msat": 5000})
    return node


async def test_token_below_the_least_cost_is_400_and_untouched(
    fee_node: NodeHandle, cashu_ts: CashuTs, mint: MintInfo
) -> None:
    token = await cashu_ts.token(mint.url, 2)
    answer = await http(
        fee_node, "POST", "/v1/chat/completions", json=HELLO, headers={"X-Cashu": token}
    )
    assert answer.status == 400, (answer.status, answer.body)
    assert set(answer.body["error"]) >= {"message", "type", "code"}
    assert not answer.headers.get("X-Cashu", "").startswith("cashu")
    assert await cashu_ts.states(mint.url, token) == ["UNSPENT"]
    assert await cashu_ts.receive(mint.url, token) == 2
    fee_node.assert_clean()


async def test_a_402_never_spends_the_token_and_holds_a_payment_request(
    wallet_node: NodeHandle, cashu_ts: CashuTs, mint: MintInfo
) -> None:
    """A 1-sat token covers the least this call can cost, not the most (128 answers)."""
    token = await cashu_ts.token(mint.url, 1)
    answer = await http(
        wallet_node,
        "POST",
        "/v1/chat/completions",
        json={**HELLO, "max_tokens": 1000, "n": 128},
        headers={"X-Cashu": token},
    )
    assert answer.status == 402, (answer.status, answer.body)
    assert answer.headers["X-Cashu"].startswith("creq")
    request = await cashu_ts.decode_request(answer.headers["X-Cashu"])
    assert request.amount is not None and request.amount > 1
    assert await cashu_ts.states(mint.url, token) == ["UNSPENT"]


async def test_x_cashu_takes_the_cashu_uri_form(
    wallet_node: NodeHandle, cashu_ts: CashuTs, mint: MintInfo
) -> None:
    paid = await chat(wallet_node, {"X-Cashu": "cashu:" + await cashu_ts.token(mint.url, 20)})
    assert paid.change is not None
    assert await cashu_ts.receive(mint.url, paid.change) == change_due(20, paid.cost_msat)
