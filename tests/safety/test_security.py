"""Secrets stay secret: the upstream never sees a client's key or token, the database keeps only
hashes, and no token reaches the node's log — not even one sent in a URL's query string."""

from __future__ import annotations

import json

import aiohttp

from tests.safety.conftest import MakeNodeProcess, Secrets, call
from tests.support.mints import MintInfo, RefWallet
from tests.support.servers import ThreadedServer

HELLO = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}]}


async def test_secrets_never_go_upstream_nor_into_the_database(
    node_process: MakeNodeProcess,
    upstream: ThreadedServer,
    mint: MintInfo,
    ref_wallet: RefWallet,
    secrets: Secrets,
) -> None:
    proc = await node_process().start()
    token, x_cashu = await ref_wallet.token(mint.url, 50), await ref_wallet.token(mint.url, 20)
    status, created = await call(
        proc, "POST", "/v1/wallet/create", json={"cashu_token": await ref_wallet.token(mint.url, 9)}
    )
    assert status == 200
    key = created["api_key"]
    secrets.add(token, x_cashu, key)
    mock = upstream.mock  # type: ignore[attr-defined]
    seen_before = len(mock.received)
    for headers in ({"Authorization": f"Bearer {token}"}, {"X-Cashu": x_cashu}):
        status, _ = await call(proc, "POST", "/v1/chat/completions", json=HELLO, headers=headers)
        assert status == 200
    status, _ = await call(
        proc, "POST", "/v1/chat/completions", json=HELLO, headers={"Authorization": f"Bearer {key}"}
    )
    assert status == 200
    sent_upstream = json.dumps(mock.received[seen_before:])
    assert secrets.found_in(sent_upstream) == []
    assert "sk-upstream-secret" in sent_upstream  # the node's own upstream key, and only that
    dump = "\n".join(proc.query_dump())
    assert secrets.found_in(dump) == []


async def test_a_token_in_a_query_string_stays_out_of_the_log(
    node_process: MakeNodeProcess, mint: MintInfo, ref_wallet: RefWallet, secrets: Secrets
) -> None:
    proc = await node_process().start()
    token = await ref_wallet.token(mint.url, 7)
    secrets.add(token)
    status, created = await call(
        proc, "GET", "/v1/balance/create", params={"initial_balance_token": token}
    )
    assert status == 200
    secrets.add(created["api_key"])
    async with aiohttp.ClientSession() as session:  # and a bogus one in any other URL
        await session.get(f"{proc.url}/v1/models?key={created['api_key']}")
    proc.stop()
    assert secrets.found_in(proc.log()) == []
