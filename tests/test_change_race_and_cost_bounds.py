"""X-Cashu change that cannot be paid is no 402, and no setting overflows a cost.

1. An X-Cashu request reads its account's balance for the change, then waits for the mint lock;
   if meanwhile the same token, used as a Bearer key, reserves from that account, the change's
   debit finds less than it read. The answer was already made and charged: it must still go
   out, with the change left in the account to claim later (it was a 402, the answer lost).
2. A huge markup, a tiny BTC rate, or a huge context/output length pushed costs past 64 bits
   (the ledger's columns, orjson): a 500 on /v1/estimate and /v1/models.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from node.settings import ConfigError, load_settings
from tests.conftest import NodeHandle
from tests.support.admin_client import PASSWORD, AdminClient
from tests.support.mints import MintInfo, RefWallet
from tests.support.proxy import MintProxy
from wallet.tokens import parse_token, serialize_v4

PRICE = {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0, "max_output_tokens": 1000}
MODELS = [
    {"id": "test-model", **PRICE},
    {"id": "test-slow", **PRICE},  # a stream that pauses `mock.pause_s` after its first chunk
    {"id": "slow-plain", "upstream_model": "test-hang", **PRICE},  # a plain answer after 3 s
]
TIMEOUT = aiohttp.ClientTimeout(total=45)


class GatedMint(MintProxy):
    """The real mint behind a gate: while `hold`, each swap waits at it until `opened`."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.hold = False
        self.waiting = asyncio.Event()
        self.opened = asyncio.Event()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.hold and request.path == "/v1/swap":
            self.waiting.set()
            await self.opened.wait()
        return await super()._handle(request)


async def moved_token(ref_wallet: RefWallet, mint: MintInfo, to: str, sat: int) -> str:
    """A token of `mint` naming the proxy in front of it as its mint."""
    return serialize_v4(parse_token(await ref_wallet.token(mint.url, sat)).with_mint(to))


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting: {what}"
        await asyncio.sleep(0.02)


async def send(
    http: aiohttp.ClientSession, node: NodeHandle, method: str, path: str, **kwargs: Any
) -> tuple[int, Any, str]:
    async with http.request(method, node.url + path, **kwargs) as resp:
        return resp.status, resp.headers.copy(), await resp.text()


def chat(
    http: aiohttp.ClientSession, node: NodeHandle, headers: dict[str, str], **body: Any
) -> asyncio.Task[tuple[int, Any, str]]:
    body = {"messages": [{"role": "user", "content": "hi"}], **body}
    return asyncio.create_task(
        send(http, node, "POST", "/v1/chat/completions", json=body, headers=headers)
    )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def gate(mint: MintInfo) -> AsyncIterator[GatedMint]:
    proxy = await GatedMint(mint.url).start()
    yield proxy
    proxy.opened.set()
    await proxy.stop()


async def test_change_the_balance_no_longer_covers_is_left_claimable_not_a_402(
    make_node: Callable[..., NodeHandle], mint: MintInfo, ref_wallet: RefWallet, gate: GatedMint
) -> None:
    node = make_node(cashu={"mints": [gate.url]}, models=MODELS)
    reserved = node.ledger.open_reservations
    token = await moved_token(ref_wallet, mint, gate.url, 50)
    other = await moved_token(ref_wallet, mint, gate.url, 20)
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        paid = chat(http, node, {"X-Cashu": token}, model="slow-plain")
        await until(lambda: reserved() == 1, "the X-Cashu request redeemed and reserved")
        gate.hold = True  # another redemption at this mint takes its lock; its swap is held
        other_paid = send(http, node, "GET", "/v1/wallet/balance", headers=bearer(other))
        redeeming = asyncio.create_task(other_paid)
        await asyncio.wait_for(gate.waiting.wait(), 10)
        await until(lambda: reserved() == 0, "the X-Cashu request answered and charged")
        await asyncio.sleep(0.3)  # its change has read the balance and waits for the lock
        pause = {"pause_s": 5}  # the same token as a Bearer key holds a reservation meanwhile
        streaming = chat(http, node, bearer(token), model="test-slow", stream=True, mock=pause)
        await until(lambda: reserved() == 1, "the Bearer request reserved")
        gate.opened.set()

        status, headers, body = await paid
        assert status == 200, body  # the answer goes out; its change could not be paid now
        assert "X-Cashu" not in headers
        assert (await redeeming)[0] == 200 and (await streaming)[0] == 200
        left = node.balance(token)
        assert 0 < left < 50_000 - int(headers["X-Cost-Msat"])  # the Bearer request paid too
        claim_path = f"/v1/wallet/change/{headers['x-request-id']}"
        status, _, claimed = await send(http, node, "GET", claim_path, headers=bearer(token))
    assert status == 200, claimed  # the change stayed in the account, claimable
    change = json.loads(claimed)["cashu_token"]
    assert await ref_wallet.receive(change) == left // 1000
    assert node.balance(token) == left % 1000
    node.assert_clean()


# --- settings that overflowed a cost ---------------------------------------------------------

BIG = 10**30
TOO_LARGE = [
    ("pricing.markup", {"pricing": {"markup": 1e300}}),
    ("pricing.markup", {"pricing": {"markup": 1000.5}}),
    ("pricing.btc_usd", {"pricing": {"btc_usd": 1e-300}}),
    ("pricing.btc_usd", {"pricing": {"btc_usd": 0.5}}),
    ("pricing.request_fee_msat", {"pricing": {"request_fee_msat": BIG}}),
    ("pricing.min_charge_msat", {"pricing": {"min_charge_msat": BIG}}),
    ("models.0.context_length", {"models": [{"id": "m", "context_length": BIG}]}),
    ("models.0.context_length", {"models": [{"id": "m", "context_length": 10**8 + 1}]}),
    ("models.0.max_output_tokens", {"models": [{"id": "m", "max_output_tokens": BIG}]}),
    ("models.0.max_output_tokens", {"models": [{"id": "m", "max_output_tokens": 10**8 + 1}]}),
]


@pytest.mark.parametrize(("field", "config"), TOO_LARGE, ids=lambda v: str(v)[:40])
def test_a_setting_that_overflows_a_cost_is_refused_naming_it(
    field: str, config: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, **config)
    assert field in str(caught.value)


def test_the_bounds_themselves_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "nutgate.toml"
    path.write_text(
        "[pricing]\nmarkup = 1000\nbtc_usd = 1\nrequest_fee_msat = 100000000000\n"
        'min_charge_msat = 100000000000\n[[models]]\nid = "m"\n'
        "context_length = 100000000\nmax_output_tokens = 100000000\n"
    )
    settings = load_settings(path)
    assert settings.pricing.markup == 1000 and settings.models[0].context_length == 10**8


@pytest.fixture
def admin_node(make_node: Callable[..., NodeHandle]) -> NodeHandle:
    return make_node(node={"admin_password": PASSWORD})


@pytest.mark.parametrize(
    ("method", "path", "body", "param"),
    [
        ("PATCH", "/admin/api/settings", {"pricing": {"markup": 1e300}}, "pricing.markup"),
        ("PATCH", "/admin/api/settings", {"pricing": {"btc_usd": 1e-300}}, "pricing.btc_usd"),
        (
            "PATCH",
            "/admin/api/models/test-model",
            {"context_length": 10**12},
            "models.0.context_length",
        ),
        (
            "PATCH",
            "/admin/api/models/test-model",
            {"max_output_tokens": 10**12},
            "models.0.max_output_tokens",
        ),
    ],
    ids=["markup", "btc_usd", "context_length", "max_output_tokens"],
)
async def test_the_admin_cannot_make_estimates_and_models_a_500(
    admin_node: NodeHandle, method: str, path: str, body: dict[str, Any], param: str
) -> None:
    async with AdminClient(admin_node.url) as client:
        await client.login()
        status, answer, _ = await client.call(method, path, body)
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        estimate = "/v1/estimate?model=test-model&input_tokens=1000"
        priced = await send(http, admin_node, "GET", estimate)
        listed = await send(http, admin_node, "GET", "/v1/models")
    assert (priced[0], listed[0]) == (200, 200), (priced[2][:200], listed[2][:200])
    assert status == 400, answer
    assert answer["error"]["param"] == param


async def test_an_estimate_past_64_bits_at_the_dearest_settings_is_a_400(
    make_node: Callable[..., NodeHandle],
) -> None:
    dear = {"id": "dear", "input_usd_per_mtok": 1_000_000, "output_usd_per_mtok": 1_000_000}
    node = make_node(pricing={"btc_usd": 1, "markup": 1000}, models=[dear])
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        url = f"{node.url}/v1/estimate?model=dear&input_tokens=1000000000000"
        async with http.get(url) as resp:
            status, answer = resp.status, await resp.json()
        async with http.get(f"{node.url}/v1/estimate?model=dear&input_tokens=1000") as resp:
            small = resp.status, (await resp.json())["cost_msat"]
    assert status == 400, answer
    assert answer["error"]["param"] == "input_tokens"
    assert small == (200, 10**17)  # $1000 of tokens, x1000 markup, at $1 a BTC: 10^6 BTC
