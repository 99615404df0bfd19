"""Fixtures of the safety suites: nodes as real processes, and the books checked after each.

proc = node_process()            # configured for the session's mints and the mock upstream
secrets.add(token)               # every token / key a test uses; none may appear in a log
await assert_books_intact(proc, {key: balance_before}, ref_wallet)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from node.db.open import open_store
from node.db.sqlite import SqliteStore
from node.db.store import Store
from tests.conftest import node_config
from tests.safety.faulty_mint import FaultyMint
from tests.safety.harness import NodeProcess
from tests.support.mints import MintInfo, RefWallet
from tests.support.servers import ThreadedServer
from wallet import (
    MIGRATIONS,
    Wallet,
    load_or_create_seed,
    parse_token,
    serialize_v4,
    shared_seed,
)

MakeNodeProcess = Callable[..., NodeProcess]


class Secrets:
    def __init__(self) -> None:
        self.values: set[str] = set()

    def add(self, *values: str) -> None:
        self.values.update(v for v in values if v)

    def found_in(self, text: str) -> list[str]:
        # a token is long; its first 40 characters are as telling as the whole
        return [v[:40] for v in self.values if v in text or v[:40] in text]


@pytest.fixture
def secrets() -> Secrets:
    return Secrets()


@pytest.fixture
def node_process(
    upstream: ThreadedServer, mint: MintInfo, fee_mint: MintInfo, tmp_path: Path, secrets: Secrets
) -> Iterator[MakeNodeProcess]:
    procs: list[NodeProcess] = []

    def make(**sections: Any) -> NodeProcess:
        sections.setdefault("cashu", {"mints": [mint.url, fee_mint.url]})
        sections.setdefault("limits", {"per_minute": 0, "per_hour": 0, "per_day": 0})
        workdir = tmp_path / f"node{len(procs)}"
        workdir.mkdir()
        config = node_config(upstream.url, workdir / "data", **sections)
        procs.append(NodeProcess(config, workdir))
        return procs[-1]

    yield make
    for proc in procs:
        proc.stop()
        leaked = secrets.found_in(proc.log())
        assert not leaked, f"secrets in the node's log: {leaked}"


@pytest.fixture
async def faulty(mint: MintInfo) -> AsyncIterator[FaultyMint]:
    proxy = await FaultyMint(mint.url).start()
    yield proxy
    await proxy.stop()


async def moved_token(ref_wallet: RefWallet, mint: MintInfo, to: str, sat: int) -> str:
    """A token of `mint`, naming the proxy in front of it as its mint."""
    token = await ref_wallet.token(mint.url, sat)
    return serialize_v4(parse_token(token).with_mint(to))


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def call(
    proc: NodeProcess, method: str, path: str, timeout: float = 30, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with (
        aiohttp.ClientSession(timeout=client_timeout) as session,
        session.request(method, proc.url + path, **kwargs) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


def _refuse(*args: Any) -> None:
    raise AssertionError("the inspecting wallet must not move money")


async def proof_states(proc: NodeProcess, mints: list[str]) -> list[Any]:
    """NUT-07 states, asked of the mints, of every proof the node's database holds (SQLite,
    or the PostgreSQL database its config names)."""
    if proc.store_url:
        db: Store = open_store(proc.store_url, proc.db_path, {"wallet": MIGRATIONS})
        seed = shared_seed(db, proc.data_dir / "wallet.seed")
    else:
        db = SqliteStore(proc.db_path, {"wallet": MIGRATIONS})
        seed = load_or_create_seed(proc.data_dir / "wallet.seed")
    try:
        async with aiohttp.ClientSession() as http:
            inspector = Wallet(db, seed, mints, http, _refuse, _refuse, _refuse)
            return await inspector.check_states()
    finally:
        db.close()


async def assert_books_intact(
    proc: NodeProcess, mints: list[str], ref_wallet: RefWallet, keys: list[str]
) -> int:
    """After a restart: audit clean, nothing reserved, every proof held unspent at its mint,
    the node solvent, and every key's balance withdrawable as a token Nutshell takes.
    Returns the sat withdrawn in all."""
    rc, out = proc.audit()
    assert rc == 0, out
    assert proc.scalar("SELECT COUNT(*) FROM reservations") == 0
    states = await proof_states(proc, mints)
    assert [s for s in states if s.remote != "UNSPENT" or s.local != "unspent"] == []
    held_msat = sum(s.amount for s in states) * 1000
    owed_msat = proc.scalar("SELECT COALESCE(SUM(balance_msat), 0) FROM accounts")
    assert held_msat >= owed_msat, (held_msat, owed_msat)
    withdrawn = 0
    for key in keys:
        auth = {"Authorization": f"Bearer {key}"}
        status, balance = await call(proc, "GET", "/v1/wallet/balance", headers=auth)
        assert status == 200, balance
        if balance["balance"] == 0:
            continue
        status, paid = await call(proc, "POST", "/v1/wallet/withdraw", headers=auth, json={})
        assert status == 200, paid
        assert await ref_wallet.receive(paid["cashu_token"]) == balance["balance"]
        withdrawn += balance["balance"]
    rc, out = proc.audit()
    assert rc == 0, out
    return withdrawn
