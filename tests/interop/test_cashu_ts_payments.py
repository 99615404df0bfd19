"""cashu-ts 4.x tokens of 1, 64 and 200 proofs (DLEQ included, cashu-ts's default) pay the node
every way a client can: as a Bearer key, through /v1/wallet/create, in X-Cashu (plain and
streamed); every change and withdraw token goes back into a cashu-ts wallet that requires DLEQ
proofs (`requireDleq`), to the sat, and the node keeps exactly the sub-sat rest.

Tokens of ~59 KB go in a header ([limits] max_header_bytes, 64 KB by default).
"""

from __future__ import annotations

import pytest

from tests.conftest import NodeHandle
from tests.interop.flows import (
    bearer,
    change_due,
    chat,
    create_key,
    stream_chat,
    withdraw,
)
from tests.support.cashu_ts import CashuTs
from tests.support.mints import MintInfo

# (sat, proofs): a 64-proof token with DLEQ is ~19 KB encoded, a 200-proof one ~59 KB.
ONE, SIXTY_FOUR, TWO_HUNDRED = (64, 1), (100, 64), (300, 200)
SIZES = [
    pytest.param(ONE, id="1-proof"),
    pytest.param(SIXTY_FOUR, id="64-proofs"),
    pytest.param(TWO_HUNDRED, id="200-proofs"),
]


async def withdraw_into_cashu_ts(
    node: NodeHandle, cashu_ts: CashuTs, mint: MintInfo, secret: str, held_msat: int
) -> None:
    """Withdraw everything; cashu-ts redeems it to the sat, the sub-sat rest stays on the node."""
    token, amount = await withdraw(node, secret)
    assert amount == held_msat // 1000
    assert await cashu_ts.receive(mint.url, token, require_dleq=True) == amount
    assert node.balance(secret) == held_msat % 1000
    node.assert_clean()


@pytest.mark.parametrize("size", SIZES)
async def test_token_as_bearer_key_pays_and_withdraws(
    wallet_node: NodeHandle, cashu_ts: CashuTs, mint: MintInfo, size: tuple[int, int]
) -> None:
    sat, proofs = size
    token = await cashu_ts.token(mint.url, sat, proofs=proofs)
    paid = await chat(wallet_node, bearer(token))
    assert paid.change is None
    assert wallet_node.balance(token) == sat * 1000 - paid.cost_msat
    await withdraw_into_cashu_ts(wallet_node, cashu_ts, mint, token, sat * 1000 - paid.cost_msat)


@pytest.mark.parametrize("size", SIZES)
async def test_wallet_create_takes_any_size_and_withdraws(
    wallet_node: NodeHandle, cashu_ts: CashuTs, mint: MintInfo, size: tuple[int, int]
) -> None:
    sat, proofs = size
    key, held = await create_key(wallet_node, await cashu_ts.token(mint.url, sat, proofs=proofs))
    assert held == sat * 1000
    paid = await chat(wallet_node, bearer(key))
    assert wallet_node.balance(key) == sat * 1000 - paid.cost_msat
    await withdraw_into_cashu_ts(wallet_node, cashu_ts, mint, key, sat * 1000 - paid.cost_msat)


@pytest.mark.parametrize("size", SIZES)
async def test_x_cashu_pays_and_change_goes_back_to_cashu_ts(
    wallet_node: NodeHandle, cashu_ts: CashuTs, mint: MintInfo, size: tuple[int, int]
) -> None:
    sat, proofs = size
    token = await cashu_ts.token(mint.url, sat, proofs=proofs)
    paid = await chat(wallet_node, {"X-Cashu": token})
    assert paid.change is not None
    assert await cashu_ts.receive(mint.url, paid.change, require_dleq=True) == change_due(
        sat, paid.cost_msat
    )
    assert wallet_node.balance(token) == (sat * 1000 - paid.cost_msat) % 1000
    wallet_node.assert_clean()


@pytest.mark.parametrize("size", SIZES)
async def test_x_cashu_stream_change_goes_back_to_cashu_ts(
    wallet_node: NodeHandle, cashu_ts: CashuTs, mint: MintInfo, size: tuple[int, int]
) -> None:
    sat, proofs = size
    token = await cashu_ts.token(mint.url, sat, proofs=proofs)
    paid = await stream_chat(wallet_node, {"X-Cashu": token})
    assert paid.change is not None
    assert await cashu_ts.receive(mint.url, paid.change, require_dleq=True) == change_due(
        sat, paid.cost_msat
    )
    assert wallet_node.balance(token) == (sat * 1000 - paid.cost_msat) % 1000
    wallet_node.assert_clean()
