"""Property test at a fee mint (100 ppk): no sequence of payouts and payments creates money.

Hypothesis draws sequences of withdraws (tiny amounts included), refunds, topups, X-Cashu
requests paid with a fresh token or with the change of the previous one, and redemptions of
every token the node paid out, merged into one swap by Nutshell's wallet (the cheapest way to
redeem many small proofs). After each sequence:
- the node's proofs, checked at the mint (NUT-07, the admin audit), cover what it owes;
- `nutgate audit` and the ledger's own audit are clean, nothing stays reserved;
- the client holds no more than it paid minus what it was charged: what it redeemed, plus the
  face value of the tokens it still holds, plus what its accounts still hold.

`make test` runs a couple of sequences per backend; `make fuzz` many more
(NUTGATE_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import wallet as cashu
from node.app import create_app
from node.settings import load_settings
from tests.conftest import NodeHandle, node_config
from tests.support.admin_client import PASSWORD
from tests.support.mints import MintInfo, RefWallet, RefWalletError
from tests.support.money import admin_audit, assert_solvent, call, merge_tokens
from tests.support.pg import BOTH_BACKENDS, Databases, drop_database
from tests.support.servers import ThreadedServer

pytestmark = BOTH_BACKENDS

EXAMPLES = max(2, int(os.environ.get("NUTGATE_FUZZ_EXAMPLES", "8")) // 4)
MONEY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
HELLO = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
FEE_PPK = 100

SAT = st.integers(1, 3) | st.integers(4, 40)  # tiny amounts, where fees weigh most
WITHDRAW = st.tuples(st.just("withdraw"), st.none() | SAT)
STEP = st.one_of(
    WITHDRAW,
    WITHDRAW,  # payouts are where fees are paid: drawn most
    st.tuples(st.just("refund"), st.none()),
    st.tuples(st.just("topup"), st.integers(2, 40)),
    st.tuples(st.just("xcashu_fresh"), st.integers(2, 40)),
    st.tuples(st.just("xcashu_change"), st.none()),
    st.tuples(st.just("redeem"), st.none()),
)
STEPS = st.lists(STEP, min_size=3, max_size=12)


@dataclass
class Client:
    """What one client put in, was charged, and holds."""

    key: str = ""
    paid_sat: int = 0  # fresh tokens the node took
    charged_msat: int = 0
    redeemed_sat: int = 0  # what Nutshell's wallet kept of the tokens the node paid out
    held: list[str] = field(default_factory=list)  # tokens from the node, not redeemed yet
    one_shots: list[str] = field(default_factory=list)  # X-Cashu tokens the node took

    def holds_msat(self) -> int:
        return sum(cashu.parse_token(t).amount for t in self.held) * 1000


@pytest.fixture
def fee_nodes(
    upstream: ThreadedServer,
    fee_mint: MintInfo,
    tmp_path_factory: pytest.TempPathFactory,
    store_backend: str,
    pg_databases: Databases,
) -> Callable[[], contextlib.AbstractContextManager[NodeHandle]]:
    """A node of its own per sequence, gone (database too) once the sequence is checked: its
    proofs are then only this client's, so payouts often need a swap (and pay its fee), and a
    failing sequence shrinks to the same result."""

    @contextlib.contextmanager
    def fresh() -> Iterator[NodeHandle]:
        url = pg_databases.new() if store_backend == "postgres" else ""
        sections = {
            "node": {"admin_password": PASSWORD},
            "cashu": {"mints": [fee_mint.url]},
            "limits": {"per_minute": 0, "per_hour": 0, "per_day": 0},
            "store": {"url": url},
        }
        config = node_config(upstream.url, tmp_path_factory.mktemp("node"), **sections)
        settings = load_settings(None, **config)
        handle = NodeHandle(settings, ThreadedServer(lambda: create_app(settings)).start())
        try:
            yield handle
        finally:
            handle.server.stop()
            handle.db.close()
            if url:
                drop_database(url)

    return fresh


class Run:
    def __init__(self, node: NodeHandle, mint: MintInfo, ref: RefWallet) -> None:
        self.node, self.mint, self.ref = node, mint, ref
        self.client = Client()

    async def fresh(self, amount: int) -> str:
        return await self.ref.token(self.mint.url, amount)

    async def open(self) -> None:
        token = await self.fresh(30)
        status, _, body = await call(
            self.node, "POST", "/v1/wallet/create", json={"cashu_token": token}
        )
        assert status == 200, body
        self.client.key, self.client.paid_sat = body["api_key"], 30

    async def step(self, kind: str, arg: Any) -> None:
        await getattr(self, kind)(arg)

    async def payout(self, path: str, body: Any) -> None:
        before = self.node.balance(self.client.key)
        status, _, answer = await call(self.node, "POST", path, self.client.key, json=body)
        if status == 200:
            assert cashu.parse_token(answer["cashu_token"]).amount == answer["amount"]
            spent = (answer["amount"] + answer["fee_sat"]) * 1000
            assert self.node.balance(self.client.key) == before - spent
            self.client.held.append(answer["cashu_token"])
            return
        code = answer["error"]["code"]
        refusals = {(402, "insufficient_balance"), (400, "fees_exceed_amount"), (400, "no_balance")}
        assert (status, code) in refusals
        assert self.node.balance(self.client.key) == before  # a refusal changes nothing

    async def withdraw(self, amount: int | None) -> None:
        await self.payout("/v1/wallet/withdraw", {} if amount is None else {"amount": amount})

    async def refund(self, _: None) -> None:
        await self.payout("/v1/wallet/refund", None)

    async def topup(self, amount: int) -> None:
        token = await self.fresh(amount)
        status, _, body = await call(
            self.node, "POST", "/v1/wallet/topup", self.client.key, json={"cashu_token": token}
        )
        assert status == 200, body
        self.client.paid_sat += amount

    async def xcashu_fresh(self, amount: int) -> None:
        token = await self.fresh(amount)
        if await self.xcashu(token):
            self.client.paid_sat += amount

    async def xcashu_change(self, _: None) -> None:
        if self.client.held:  # pay with the last token the node paid out
            await self.xcashu(self.client.held.pop())

    async def xcashu(self, token: str) -> bool:
        """Pay one request with `token`; False if the node refused the token (still ours)."""
        status, headers, body = await call(
            self.node, "POST", "/v1/chat/completions", x_cashu=token, json=HELLO
        )
        if status == 400 and body["error"]["code"] in ("token_invalid", "token_too_small"):
            self.client.held.append(token)  # too small for the mint's fee: never taken
            return False
        assert status == 200, body
        self.client.one_shots.append(token)
        self.client.charged_msat += int(headers["X-Cost-Msat"])
        if "X-Cashu" in headers:
            self.client.held.append(headers["X-Cashu"])
        return True

    async def redeem(self, _: None) -> None:
        if not self.client.held:
            return
        merged = merge_tokens(self.client.held)
        proofs = len(cashu.parse_token(merged).proofs)
        fee = -(-proofs * FEE_PPK // 1000)
        try:
            self.client.redeemed_sat += await self.ref.receive(merged)
        except RefWalletError:
            # only a token its own fee eats whole is refused
            assert cashu.parse_token(merged).amount <= fee, merged
        self.client.held = []

    async def remaining_msat(self) -> int:
        """What the client's accounts still hold: its key, and each one-shot payment's rest."""
        total = self.node.balance(self.client.key)
        for token in self.client.one_shots:
            status, _, body = await call(self.node, "GET", "/v1/wallet/balance", x_cashu=token)
            assert status == 200, body
            total += body["balance_msat"]
        return total


def cli_audit(node: NodeHandle, tmp_path: Path) -> None:
    """`nutgate audit` on the node's database."""
    config = tmp_path / "audit.toml"
    config.write_text(
        f'[node]\ndata_dir = "{node.settings.node.data_dir}"\n'
        f'[store]\nurl = "{node.settings.store.url}"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "node.cli", "audit", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "audit clean" in done.stdout, done.stdout + done.stderr


# the reproductions, run every time: many 1 sat payouts merged into one redemption;
# X-Cashu requests each paid with the previous change; payouts that need a swap
TINY_PAYOUTS = [("withdraw", 1)] * 10 + [("redeem", None)]
CHANGE_CHAIN = [("xcashu_fresh", 40)] + [("xcashu_change", None)] * 8 + [("redeem", None)]
SWAPS = [("withdraw", 2), ("withdraw", 5), ("topup", 9), ("withdraw", None), ("refund", None)]


@MONEY
@given(steps=STEPS)
@example(steps=TINY_PAYOUTS)
@example(steps=CHANGE_CHAIN)
@example(steps=SWAPS)
def test_no_sequence_of_payouts_and_payments_creates_money(
    fee_nodes: Callable[[], contextlib.AbstractContextManager[NodeHandle]],
    fee_mint: MintInfo,
    ref_wallet: RefWallet,
    tmp_path: Path,
    steps: list[tuple[str, Any]],
) -> None:
    async def sequence(fee_node: NodeHandle) -> None:
        run = Run(fee_node, fee_mint, ref_wallet)
        await run.open()
        for kind, arg in steps:
            await run.step(kind, arg)
        await run.redeem(None)  # everything the node paid out, redeemed at the mint
        client = run.client
        kept = client.redeemed_sat * 1000 + client.holds_msat() + await run.remaining_msat()
        assert kept <= client.paid_sat * 1000 - client.charged_msat, (steps, client)
        assert_solvent(await admin_audit(fee_node))

    with fee_nodes() as fee_node:
        asyncio.run(sequence(fee_node))
        fee_node.assert_clean()
        cli_audit(fee_node, tmp_path)
