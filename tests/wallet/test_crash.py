"""A node killed between the mint's answer and its own commit loses nothing: at the next start
`recover()` restores what the mint signed (NUT-09) and credits / pays out exactly once."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from tests.support.mints import ROOT, MintInfo, RefWallet, RefWalletError
from tests.wallet.conftest import MakeWallet
from wallet import parse_token
from wallet.outputs import input_fee


async def run_child(crash_at: str, *args: str) -> int:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.wallet.crash_child",
        crash_at,
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, out, err)
    return proc.returncode


@pytest.mark.parametrize("which", ["mint", "fee_mint"])
async def test_receive_killed_after_the_swap_is_credited_once_by_recover(
    which: str,
    request: pytest.FixtureRequest,
    ref_wallet: RefWallet,
    make_wallet: MakeWallet,
    tmp_path: Path,
) -> None:
    mint: MintInfo = request.getfixturevalue(which)
    env = make_wallet(mint.url)
    token = await ref_wallet.token(mint.url, 77)
    await run_child(
        "receive-after-swap", str(env.path), env.seed.hex(), mint.url, "receive", token, "crashed"
    )
    assert env.pending_swaps() == 1 and env.ledger.events("credit") == []
    with pytest.raises(RefWalletError, match="11001"):  # the mint did swap: the token is gone
        await ref_wallet.receive(token)

    fresh = make_wallet(mint.url, path=env.path, seed=env.seed)  # the node's next start
    await fresh.wallet.recover()
    await fresh.wallet.recover()
    (credit,) = fresh.ledger.events("credit")
    fee = input_fee([mint.fee_ppk] * len(parse_token(token).proofs))
    assert credit == ("crashed", (77 - fee) * 1000)
    assert fresh.pending_swaps() == 0
    assert fresh.wallet.assets_msat() == {mint.url: (77 - fee) * 1000}
    # the recovered proofs are real: pay them all out and Nutshell accepts them
    payout = await fresh.wallet.send(50, "after-crash")  # worth 50: its receiver pays its fee
    receiver_fee = input_fee([mint.fee_ppk] * len(parse_token(payout).proofs))
    assert await ref_wallet.receive(payout) == 50 - receiver_fee


async def test_send_killed_after_the_swap_is_finished_by_recover(
    mint: MintInfo, ref_wallet: RefWallet, make_wallet: MakeWallet
) -> None:
    env = make_wallet(mint.url)
    await env.wallet.receive(await ref_wallet.token(mint.url, 100), "fund")
    await run_child(
        "send-after-swap", str(env.path), env.seed.hex(), mint.url, "send", "45", "payout"
    )
    assert [p["state"] for p in env.payouts()] == ["pending"]
    assert env.ledger.events("debit") == [("payout", 45_000)]

    fresh = make_wallet(mint.url, path=env.path, seed=env.seed)
    await fresh.wallet.recover()
    token = fresh.wallet.payout("payout")
    assert token is not None
    assert await fresh.wallet.send(45, "payout") == token  # the idempotent retry gets it too
    assert await ref_wallet.receive(token) == 45
    assert fresh.ledger.events("debit") == [("payout", 45_000)]
    assert fresh.ledger.events("refund") == []
    assert fresh.wallet.assets_msat() == {mint.url: 55_000}
