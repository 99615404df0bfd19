"""SIGKILL the node between a mint's answer and its own commit on the Lightning paths, restart
it on the same data dir (SQLite, or PostgreSQL), and find every msat: an invoice paid is
credited once, a payment to an invoice is debited once (the fee actually paid, no more), the
audit is clean and every proof the node holds is unspent at its mint."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import aiohttp
import pytest

from node.db.open import open_store
from tests.safety.conftest import MakeNodeProcess, Secrets, auth, call
from tests.safety.harness import NodeProcess
from tests.support.mints import MintInfo, RefWallet
from tests.support.pg import Databases
from wallet import MIGRATIONS, Wallet, shared_seed

INVOICE = "/v1/balance/lightning/invoice"
LIGHTNING = {"watch_interval_s": 0.2}


def _refuse(*args: Any) -> None:
    raise AssertionError("the inspecting wallet must not move money")


def sections(backend: str, pg_databases: Databases) -> dict[str, Any]:
    made: dict[str, Any] = {"lightning": LIGHTNING}
    if backend == "postgres":
        made["store"] = {"url": pg_databases.new()}
    return made


async def assert_solvent_and_unspent(proc: NodeProcess, mints: list[str]) -> None:
    """Audit clean; every proof held unspent at its mint; they cover every balance."""
    rc, out = proc.audit()
    assert rc == 0, out
    db = open_store(proc.store_url, proc.db_path, {"wallet": MIGRATIONS})
    try:
        seed = shared_seed(db, proc.data_dir / "wallet.seed")
        async with aiohttp.ClientSession() as http:
            states = await Wallet(db, seed, mints, http, _refuse, _refuse, _refuse).check_states()
    finally:
        db.close()
    assert [s for s in states if s.remote != "UNSPENT" or s.local != "unspent"] == []
    owed = proc.scalar("SELECT COALESCE(SUM(balance_msat), 0) FROM accounts")
    assert sum(s.amount for s in states) * 1000 >= owed


async def paid(proc: NodeProcess, invoice_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        status, body = await call(proc, "GET", f"{INVOICE}/{invoice_id}/status")
        assert status == 200, body
        if body["status"] == "paid" or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.1)


async def balance_msat(proc: NodeProcess, key: str) -> int:
    status, body = await call(proc, "GET", "/v1/wallet/balance", headers=auth(key))
    assert status == 200, body
    return int(body["balance_msat"])


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_kill_between_the_mint_signatures_and_the_commit_credits_the_invoice_once(
    backend: str,
    node_process: MakeNodeProcess,
    pg_databases: Databases,
    mint: MintInfo,
    fee_mint: MintInfo,
    ref_wallet: RefWallet,
    secrets: Secrets,
) -> None:
    proc = await node_process(**sections(backend, pg_databases)).start(crash_at="mint-after-mint")
    status, invoice = await call(proc, "POST", INVOICE, json={"amount_sats": 150})
    assert status == 200, invoice
    # nobody polls: the node's watcher mints it, and dies before storing the signatures
    assert await proc.wait_dead() == -signal.SIGKILL
    assert proc.scalar("SELECT COUNT(*) FROM accounts") == 0
    await proc.start()  # recovery restores the signatures (NUT-09) and credits them
    body = await paid(proc, invoice["invoice_id"])
    key = body["api_key"]
    secrets.add(key)
    assert await balance_msat(proc, key) == 150_000
    await asyncio.sleep(0.5)  # the watcher's later rounds credit nothing more
    assert await balance_msat(proc, key) == 150_000
    assert proc.scalar("SELECT COUNT(*) FROM accounts") == 1
    await assert_solvent_and_unspent(proc, [mint.url, fee_mint.url])
    status, out = await call(proc, "POST", "/v1/wallet/withdraw", headers=auth(key), json={})
    assert status == 200, out
    assert await ref_wallet.receive(out["cashu_token"]) == 150  # the proofs were real


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_kill_during_a_melt_debits_the_payment_once(
    backend: str,
    node_process: MakeNodeProcess,
    pg_databases: Databases,
    mint: MintInfo,
    fee_mint: MintInfo,
    secrets: Secrets,
) -> None:
    proc = await node_process(**sections(backend, pg_databases)).start()
    payee = await node_process(cashu={"mints": [fee_mint.url]}).start()
    status, invoice = await call(proc, "POST", INVOICE, json={"amount_sats": 300})
    key = (await paid(proc, invoice["invoice_id"]))["api_key"]
    secrets.add(key)
    status, owed = await call(payee, "POST", INVOICE, json={"amount_sats": 120})
    assert status == 200, owed
    proc.stop()
    await proc.start(crash_at="melt-after-melt")
    headers = {**auth(key), "Idempotency-Key": "melt-crash-1"}
    body = {"invoice": owed["bolt11"]}
    with pytest.raises(aiohttp.ClientError):
        await call(proc, "POST", "/v1/wallet/withdraw", headers=headers, json=body)
    assert await proc.wait_dead() == -signal.SIGKILL
    await proc.start()  # the melt quote says paid: the change is restored, the rest refunded
    for _ in range(2):
        status, done = await call(proc, "POST", "/v1/wallet/withdraw", headers=headers, json=body)
        assert status == 200, done
        assert done["status"] == "paid" and done["amount"] == 120
    assert 0 <= done["fee_sat"] < done["fee_reserve_sat"]
    assert await balance_msat(proc, key) == (300 - 120 - done["fee_sat"]) * 1000
    await assert_solvent_and_unspent(proc, [mint.url, fee_mint.url])
