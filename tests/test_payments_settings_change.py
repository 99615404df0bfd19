"""A settings change that rebuilds the wallet and Payments (the `[cashu]` section) while one
token is being redeemed by many requests: the new Payments keeps the old one's token locks,
so the token is still redeemed once and every request pays from the one account it made."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.conftest import NodeHandle
from tests.support.admin_client import PASSWORD, AdminClient
from tests.support.mints import MintInfo, RefWallet
from tests.support.sdk import async_openai

HELLO: dict[str, Any] = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}]}


async def test_one_token_across_a_cashu_settings_change_is_credited_once(
    make_node: Callable[..., NodeHandle], mint: MintInfo, fee_mint: MintInfo, ref_wallet: RefWallet
) -> None:
    node = make_node(node={"admin_password": PASSWORD}, cashu={"mints": [mint.url]})
    token = await ref_wallet.token(mint.url, 100)
    api = async_openai(f"{node.url}/v1", token)
    async with AdminClient(node.url) as admin:
        await admin.login()
        change = {"cashu": {"mints": [mint.url, fee_mint.url]}}

        async def save_midway() -> None:
            await asyncio.sleep(0.01)  # while the first redemption is at the mint
            await admin.send("PATCH", "/admin/api/settings", change)

        calls = [
            api.chat.completions.with_raw_response.create(**HELLO, max_tokens=5) for _ in range(12)
        ]
        *answers, _ = await asyncio.gather(*calls, save_midway())
    spent = sum(int(a.headers["x-cost-msat"]) for a in answers)
    assert node.balance(token) == 100_000 - spent
    node.assert_clean()
