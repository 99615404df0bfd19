"""SIGKILL the node between a request's record and the settlement's commit (they are one
transaction): after a restart the request is charged once, at its prompt's cost, and has
exactly one record, whose cost is the ledger's charge. On SQLite, and on PostgreSQL, where the
settlement's batch goes to the server as one query ending in COMMIT: the kill lands as its
statements are taken down, before the query is sent (once sent, the server commits it whole)."""

from __future__ import annotations

import aiohttp
import pytest

from node.money.records import INTERRUPTED, RECORDED
from tests.safety.conftest import MakeNodeProcess, Secrets, assert_books_intact, auth, call
from tests.support.mints import MintInfo, RefWallet
from tests.support.pg import Databases

HELLO = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_kill_between_the_record_and_the_commit_charges_and_records_once(
    backend: str,
    node_process: MakeNodeProcess,
    mint: MintInfo,
    ref_wallet: RefWallet,
    secrets: Secrets,
    pg_databases: Databases,
) -> None:
    store = {"store": {"url": pg_databases.new()}} if backend == "postgres" else {}
    proc = await node_process(**store).start(crash_at=RECORDED)
    token = await ref_wallet.token(mint.url, 100)
    secrets.add(token)
    status, body = await call(proc, "GET", "/v1/wallet/balance", headers=auth(token))
    assert status == 200 and body["balance_msat"] == 100_000
    async with aiohttp.ClientSession() as session:
        try:
            async with session.post(
                f"{proc.url}/v1/chat/completions", json=HELLO, headers=auth(token)
            ) as resp:
                await resp.read()
        except aiohttp.ClientError:
            pass  # the node died before answering
    assert await proc.wait_dead() == -9
    held = proc.query("SELECT id, floor_msat FROM reservations")
    assert len(held) == 1  # the settlement was rolled back with its record
    request_id, floor = held[0]["id"], held[0]["floor_msat"]
    assert proc.scalar("SELECT COUNT(*) FROM request_records") == 0

    await proc.start()  # no crash point: the orphan is settled, and recorded, at start
    records = proc.query("SELECT request_id, cost_msat, status FROM request_records")
    assert [tuple(r) for r in records] == [(request_id, floor, INTERRUPTED)]
    # what the upstream billed, from the charge (markup 1, no request fee here)
    assert proc.scalar("SELECT upstream_cost_msat FROM request_records") == floor
    charged = proc.scalar(
        "SELECT COALESCE(SUM(-amount_msat), 0) FROM entries WHERE kind = 'charge' AND ref = ?",
        (request_id,),
    )
    assert charged == floor > 0
    status, usage = await call(proc, "GET", "/v1/usage", headers=auth(token))
    assert status == 200 and usage["totals"]["cost_msat"] == charged
    assert usage["totals"]["requests"] == 1
    status, body = await call(proc, "GET", "/v1/wallet/balance", headers=auth(token))
    assert body["balance_msat"] == 100_000 - charged
    await assert_books_intact(proc, [mint.url], ref_wallet, [token])
