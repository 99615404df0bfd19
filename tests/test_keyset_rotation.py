"""Paying out after the mint rotated its keysets: a real Nutshell mint of the test's own,
restarted on the next derivation path, and node wallets sharing one database."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.dev.procs import free_port
from tests.support.mints import MINT_PYTHON, RefWallet, _mint_env, _Process
from tests.support.pg import BOTH_BACKENDS
from tests.wallet import conftest as wallet_fixtures
from tests.wallet.conftest import MakeWallet
from wallet import MintError, parse_token, serialize_v4

pytestmark = BOTH_BACKENDS
http, make_wallet = wallet_fixtures.http, wallet_fixtures.make_wallet  # the wallet tests' own


class RotatingMint:
    """A mint on a fixed port and data dir; `rotate` restarts it on the next keyset."""

    def __init__(self) -> None:
        self.port = free_port()
        self.data = Path(tempfile.mkdtemp(prefix="nutgate-rotating-data-"))
        self.index = 0
        self.proc = self._start(fee_ppk=100)

    @property
    def url(self) -> str:
        return self.proc.url

    @property
    def alt_url(self) -> str:
        """The same mint by another address: a Nutshell wallet of its own, which lists the
        keysets afresh (the reference wallet keeps the first listing of each mint URL)."""
        return f"http://localhost:{self.port}"

    def _start(self, fee_ppk: int) -> _Process:
        env = _mint_env(self.port, fee_ppk, "rotating", self.data)
        env["MINT_DERIVATION_PATH"] = f"m/0'/0'/{self.index}'"
        args = [str(MINT_PYTHON), "-m", "cashu.mint"]
        proc = _Process("rotating-mint", args, env, self.port, "/v1/keysets")
        proc.wait()
        return proc

    def rotate(self, fee_ppk: int, retire_old: bool) -> None:
        """Restart on a new keyset (fee `fee_ppk`); `retire_old` deactivates the old ones, as
        Nutshell's own rotation does."""
        self.proc.stop()
        if retire_old:
            with contextlib.closing(sqlite3.connect(self.data / "db" / "mint.sqlite3")) as db:
                db.execute("UPDATE keysets SET active = 0")
                db.commit()
        self.index += 1
        self.proc = self._start(fee_ppk)


async def fresh_token(ref_wallet: RefWallet, mint: RotatingMint, amount: int) -> str:
    """A token of the rotated mint from a Nutshell wallet that knows its new keysets."""
    token = parse_token(await ref_wallet.token(mint.alt_url, amount))
    return serialize_v4(token.with_mint(mint.url))


async def ref_receive(ref_wallet: RefWallet, mint: RotatingMint, token: str) -> int:
    return await ref_wallet.receive(serialize_v4(parse_token(token).with_mint(mint.alt_url)))


@pytest.fixture
def rotating_mint() -> Iterator[RotatingMint]:
    mint = RotatingMint()
    yield mint
    mint.proc.stop()


async def test_a_withdraw_spends_proofs_another_instance_received_into_a_new_keyset(
    rotating_mint: RotatingMint, ref_wallet: RefWallet, make_wallet: MakeWallet, tmp_path: Path
) -> None:
    """Instance B lists the mint's keysets; the mint adds a keyset; instance A receives into
    it. B's withdraw must pay (not raise LookupError: a 500)."""
    url, shared = rotating_mint.url, tmp_path / "shared.sqlite3"
    b = make_wallet(url, path=shared)
    await b.wallet.receive(await ref_wallet.token(url, 20), "fund-b")  # B's listing: old keyset
    await asyncio.to_thread(rotating_mint.rotate, 0, False)  # the loop sees the old one go
    a = make_wallet(url, path=shared)
    new_keyset_token = await fresh_token(ref_wallet, rotating_mint, 100)
    await a.wallet.receive(new_keyset_token, "fund-a")  # A's proofs: in the new keyset
    token = await b.wallet.send(50, "withdraw")
    proofs = parse_token(token).proofs
    assert sum(p.amount for p in proofs) == 50  # worth the amount: its receiver pays its fee
    assert 50 - await ref_receive(ref_wallet, rotating_mint, token) <= -(-len(proofs) // 10)
    (payout,) = b.payouts()
    assert b.ledger.events("debit") == [("withdraw", (50 + payout["fee_sat"]) * 1000)]


async def test_a_withdraw_after_the_mint_retired_the_cached_keyset_pays_on_retry(
    rotating_mint: RotatingMint, ref_wallet: RefWallet, make_wallet: MakeWallet
) -> None:
    """The mint deactivates the keyset the wallet's listing (fresh for 5 minutes) calls
    active: outputs there are refused. That refusal must make the next payout list the
    keysets again, not fail the same way until the listing expires."""
    url = rotating_mint.url
    env = make_wallet(url)
    await env.wallet.receive(await ref_wallet.token(url, 100), "fund")
    await asyncio.to_thread(rotating_mint.rotate, 0, True)
    with contextlib.suppress(MintError):  # may be refused (and refunded) once
        await env.wallet.send(30, "withdraw-1")
    token = await env.wallet.send(30, "withdraw-2")
    assert await ref_receive(ref_wallet, rotating_mint, token) == 30


async def test_a_receive_after_the_mint_retired_the_cached_keyset_credits_on_retry(
    rotating_mint: RotatingMint, ref_wallet: RefWallet, make_wallet: MakeWallet
) -> None:
    """The same for a token of a keyset the wallet knows: Nutshell refuses outputs of a retired
    keyset with code 11000 ("keyset id inactive."), not NUT-02's 12002, which the receive path
    waits for before listing the keysets again."""
    url = rotating_mint.url
    env = make_wallet(url)
    await env.wallet.receive(await ref_wallet.token(url, 10), "fund")
    token = await ref_wallet.token(url, 40)  # a client's token of the old keyset
    await asyncio.to_thread(rotating_mint.rotate, 0, True)
    with contextlib.suppress(MintError):  # may be refused once: the token stays unspent
        await env.wallet.receive(token, "topup-1")
    receipt = await env.wallet.receive(token, "topup-2")
    assert receipt.amount_msat + receipt.fee_msat == 40_000  # the old keyset charges fees
