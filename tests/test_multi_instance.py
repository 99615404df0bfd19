"""Two node processes on one PostgreSQL database, one mock upstream, a real Nutshell mint:
the money stays right whichever instance a load balancer picks for each request."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import wallet
from node.admin import tables as admin_tables
from node.db.open import open_store
from node.money import ledger as ledger_module
from node.money.ledger import Ledger, hash_key
from tests.conftest import node_config
from tests.safety.harness import NodeProcess
from tests.support.mints import MintInfo, RefWallet
from tests.support.pg import Databases
from tests.support.servers import ThreadedServer

MIGRATIONS = {
    "node": ledger_module.MIGRATIONS,
    "wallet": wallet.MIGRATIONS,
    "admin": admin_tables.MIGRATIONS,
}
NO_LIMITS = {"per_minute": 0, "per_hour": 0, "per_day": 0}
REFUSALS = {
    (402, "insufficient_balance"),
    (400, "invalid_request"),
    (409, "payout_pending"),
    (503, "payout_unavailable"),
}
TIMEOUT = aiohttp.ClientTimeout(total=60)


@dataclass
class Pair:
    nodes: list[NodeProcess]
    ledger: Ledger

    def __getitem__(self, i: int) -> NodeProcess:
        return self.nodes[i % 2]


StartPair = Callable[..., Awaitable[Pair]]


@pytest.fixture
async def start_pair(
    upstream: ThreadedServer, mint: MintInfo, tmp_path: Path, pg_databases: Databases
) -> AsyncIterator[StartPair]:
    """Two node processes on one new PostgreSQL database, with `sections` in their config."""
    started: list[Pair] = []

    async def start(**sections: Any) -> Pair:
        url = pg_databases.new()
        sections = {"cashu": {"mints": [mint.url]}, "limits": NO_LIMITS, **sections}
        nodes = []
        for i in range(2):
            workdir = tmp_path / f"node{len(started)}-{i}"
            workdir.mkdir()
            config = node_config(upstream.url, workdir / "data", store={"url": url}, **sections)
            nodes.append(NodeProcess(config, workdir))
        await asyncio.gather(*(node.start() for node in nodes))  # both migrate at once
        started.append(Pair(nodes, Ledger(open_store(url, tmp_path / "unused", MIGRATIONS))))
        return started[-1]

    yield start
    for pair in started:
        pair.ledger.db.close()
        for node in pair.nodes:
            node.stop()


@pytest.fixture
async def pair(start_pair: StartPair) -> Pair:
    return await start_pair()


async def call(
    session: aiohttp.ClientSession, node: NodeProcess, method: str, path: str, **kwargs: Any
) -> tuple[int, Any, Any]:
    async with session.request(method, node.url + path, **kwargs) as resp:
        return resp.status, resp.headers, await resp.json(content_type=None)


def bearer(key: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **headers}


def assert_books_clean(pair: Pair) -> None:
    assert pair.ledger.audit() == []
    assert pair.ledger.open_reservations() == 0


async def chat(session: aiohttp.ClientSession, node: NodeProcess, key: str) -> tuple[int, int]:
    body = {
        "model": "test-model",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 500,
        "mock": {"completion_tokens": 500, "pause_s": 0.05},
    }
    status, headers, _ = await call(
        session, node, "POST", "/v1/chat/completions", headers=bearer(key), json=body
    )
    return status, int(headers.get("x-cost-msat", 0))


async def test_100_requests_on_one_key_across_both_never_overdraw(pair: Pair) -> None:
    key = "sk-" + secrets.token_urlsafe(16)
    granted = 30_000  # about 29 requests' worth: most of the 100 must be refused
    pair.ledger.grant(hash_key(key), granted)
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        results = await asyncio.gather(*(chat(session, pair[i], key) for i in range(100)))
    statuses = Counter(status for status, _ in results)
    assert set(statuses) == {200, 402}, statuses
    account = pair.ledger.find(hash_key(key))
    assert account is not None
    charged = sum(cost for status, cost in results if status == 200)
    assert account.balance_msat == granted - charged >= 0
    assert_books_clean(pair)


async def test_200_paid_requests_on_both_at_once_are_each_charged_and_recorded_once(
    pair: Pair,
) -> None:
    """Each instance's settlements run in pipelined batches on its writer thread, under the
    one write lock: the two instances' batches never lose or double a charge."""
    keys = ["sk-" + secrets.token_urlsafe(16) for _ in range(8)]
    for key in keys:
        pair.ledger.grant(hash_key(key), 100_000)
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        results = await asyncio.gather(*(chat(session, pair[i], keys[i % 8]) for i in range(200)))
    assert {status for status, _ in results} == {200}
    for j, key in enumerate(keys):
        account = pair.ledger.find(hash_key(key))
        assert account is not None
        charged = sum(cost for i, (_, cost) in enumerate(results) if i % 8 == j)
        assert 0 < charged == 100_000 - account.balance_msat
    row = pair.ledger.db.query_one("SELECT COUNT(*), SUM(cost_msat) FROM request_records")
    assert row is not None and tuple(row) == (200, sum(cost for _, cost in results))
    assert_books_clean(pair)


async def test_one_token_sent_to_both_at_once_is_credited_once(
    pair: Pair, mint: MintInfo, ref_wallet: RefWallet
) -> None:
    token = await ref_wallet.token(mint.url, 50)
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        answers = await asyncio.gather(
            *(
                call(session, pair[i], "GET", "/v1/wallet/balance", headers=bearer(token))
                for i in range(8)
            )
        )
    assert [(status, body["balance"]) for status, _, body in answers] == [(200, 50)] * 8
    account = pair.ledger.find(hash_key(token))
    assert account is not None and account.balance_msat == 50_000
    credits = pair.ledger.db.query("SELECT amount_msat FROM wallet_credits")
    assert [row["amount_msat"] for row in credits] == [50_000]
    assert_books_clean(pair)


async def test_withdraws_on_both_at_once_never_pay_more_than_the_balance(
    pair: Pair, mint: MintInfo, ref_wallet: RefWallet
) -> None:
    key = await ref_wallet.token(mint.url, 100)
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:

        async def withdraw(i: int, **body: Any) -> tuple[int, Any]:
            headers = bearer(key, **{"Idempotency-Key": f"w{i}-{body}"})
            status, _, answer = await call(
                session, pair[i], "POST", "/v1/wallet/withdraw", headers=headers, json=body
            )
            return status, answer

        await call(session, pair[0], "GET", "/v1/wallet/balance", headers=bearer(key))
        first = await asyncio.gather(*(withdraw(i, amount=30) for i in range(8)))
        rest = await asyncio.gather(*(withdraw(i) for i in range(4)))
    paid = [answer for status, answer in first + rest if status == 200]
    refused = [
        (status, answer["error"]["code"]) for status, answer in first + rest if status != 200
    ]
    # refusals only: short balance, nothing left, or the node's proofs held by the other's payout
    assert set(refused) <= REFUSALS, refused
    received = [await ref_wallet.receive(answer["cashu_token"]) for answer in paid]
    assert received == [answer["amount"] for answer in paid]  # each token good at the mint
    account = pair.ledger.find(hash_key(key))
    assert account is not None
    assert sum(received) * 1000 + account.balance_msat == 100_000
    assert sum(received) <= 100
    assert_books_clean(pair)


async def test_an_instance_starting_leaves_the_others_requests_alone(pair: Pair) -> None:
    """A stream in flight on node 0 while node 1 restarts: its reservation is no orphan."""
    key = "sk-" + secrets.token_urlsafe(16)
    pair.ledger.grant(hash_key(key), 100_000)
    body = {
        "model": "test-slow",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 10,
        "stream": True,
        "mock": {"pause_s": 10},
    }

    async def stream(session: aiohttp.ClientSession) -> tuple[int, str]:
        async with session.post(
            pair[0].url + "/v1/chat/completions", headers=bearer(key), json=body
        ) as resp:
            return resp.status, await resp.text()

    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        slow = asyncio.create_task(stream(session))
        while pair.ledger.open_reservations() == 0:
            await asyncio.sleep(0.02)
        pair[1].stop()
        await pair[1].start()  # its resolve_orphans ran at start
        assert pair.ledger.open_reservations() == 1
        status, text = await slow
    assert status == 200 and "[DONE]" in text
    account = pair.ledger.find(hash_key(key))
    assert account is not None and 0 < account.balance_msat < 100_000
    assert_books_clean(pair)


async def test_rate_limits_count_requests_on_both_instances(start_pair: StartPair) -> None:
    pair = await start_pair(limits={"per_minute": 5, "per_hour": 0, "per_day": 0})
    key = "sk-" + secrets.token_urlsafe(16)
    pair.ledger.grant(hash_key(key), 100_000)
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        statuses = [
            (await call(session, pair[i], "GET", "/v1/wallet/balance", headers=bearer(key)))[0]
            for i in range(10)
        ]
    assert statuses == [200] * 5 + [429] * 5


async def test_failed_admin_logins_count_on_both_instances(start_pair: StartPair) -> None:
    pair = await start_pair(node={"admin_password": "right-password-1"})
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:

        async def login(i: int, password: str) -> int:
            body = {"password": password}
            return (await call(session, pair[i], "POST", "/admin/api/login", json=body))[0]

        failures = [await login(i, "wrong") for i in range(4)]  # 3 free, the 4th locks out
        assert failures == [401] * 4
        assert await login(0, "right-password-1") == 429  # locked on the other one too
        assert await login(1, "right-password-1") == 429


async def test_an_x_cashu_retry_under_its_idempotency_key_is_answered_by_either_instance(
    start_pair: StartPair, mint: MintInfo, ref_wallet: RefWallet
) -> None:
    """The key is kept with the one-shot account in the database: the other instance knows
    the first request still runs, then hands back the very change its answer carried."""
    from tests.test_change_recovery import MODELS, PATIENT

    pair = await start_pair(models=MODELS)
    token = await ref_wallet.token(mint.url, 100)
    headers = {"X-Cashu": token, "Idempotency-Key": "sdk-retry-7"}
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        first = asyncio.create_task(
            call(session, pair[0], "POST", "/v1/chat/completions", headers=headers, json=PATIENT)
        )
        while pair.ledger.open_reservations() == 0:
            await asyncio.sleep(0.02)
        status, answer_headers, body = await call(
            session, pair[1], "POST", "/v1/chat/completions", headers=headers, json=PATIENT
        )
        assert status == 409 and body["error"]["code"] == "request_in_progress", body
        status, first_headers, _ = await first
        assert status == 200
        status, answer_headers, body = await call(
            session, pair[1], "POST", "/v1/chat/completions", headers=headers, json=PATIENT
        )
        assert status == 409 and body["error"]["code"] == "duplicate_request", body
        assert answer_headers["X-Cashu"] == first_headers["X-Cashu"]
        assert answer_headers["X-Original-Request-Id"] == first_headers["x-request-id"]
        status, _, listing = await call(
            session, pair[1], "GET", "/v1/wallet/change", headers={"X-Cashu": token}
        )
    assert [c["cashu_token"] for c in listing["changes"]] == [first_headers["X-Cashu"]]
    assert await ref_wallet.receive(first_headers["X-Cashu"]) > 90
    assert_books_clean(pair)


async def test_a_sub_keys_limit_and_revocation_hold_across_both(pair: Pair) -> None:
    parent = "sk-" + secrets.token_urlsafe(16)
    pair.ledger.grant(hash_key(parent), 1_000_000)
    limit = 10_000  # about 9 requests' worth of the 30 sent
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        status, _, child = await call(
            session, pair[0], "POST", "/v1/keys", headers=bearer(parent),
            json={"spend_limit_msat": limit},
        )  # fmt: skip
        assert status == 201, child
        results = await asyncio.gather(
            *(chat(session, pair[i], child["api_key"]) for i in range(30))
        )
        statuses = Counter(status for status, _ in results)
        assert set(statuses) == {200, 402}, statuses
        account = pair.ledger.find(hash_key(parent))
        assert account is not None
        spent = 1_000_000 - account.balance_msat
        assert spent == sum(cost for status, cost in results if status == 200)
        assert 0 < spent <= limit
        status, _, _ = await call(
            session, pair[1], "DELETE", f"/v1/keys/{child['id']}", headers=bearer(parent)
        )
        assert status == 200
        status, _ = await chat(session, pair[0], child["api_key"])
        assert status == 401  # revoked on the other instance: refused here at once
    assert_books_clean(pair)
