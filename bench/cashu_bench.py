"""X-Cashu against its parts: a raw NUT-03 swap on the same mint, and the upstream alone.

The mint and Nutshell's wallet (the token source) are started with the tests' own starters
(tests/support/mints.py). Tokens are minted before any timing starts.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from bench.load import BODY
from node.dev.procs import free_port
from tests.support import mints
from wallet import crypto
from wallet.outputs import split_amount
from wallet.tokens import parse_token

CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
TOKEN_SAT = 100


class CashuStack:
    """A Nutshell mint (FakeWallet, no fees) and the reference wallet, started together."""

    def __init__(self) -> None:
        self.mint = mints._start_mint("bench-mint", 0)
        port = free_port()
        script = str(mints.ROOT / "tests" / "support" / "ref_wallet_service.py")
        self.wallet_proc = mints._Process(
            "bench-ref-wallet",
            [str(mints.MINT_PYTHON), script, "--port", str(port), "--dir", tempfile.mkdtemp()],
            {"TOR": "false"},
            port,
            "/health",
        )

    @property
    def url(self) -> str:
        return self.mint.url

    def wait(self) -> None:
        self.mint.wait()
        self.wallet_proc.wait()
        self.ref = mints.RefWallet(self.wallet_proc.url)

    def tokens(self, n: int) -> list[str]:
        return [self.ref.token_sync(self.mint.url, TOKEN_SAT) for _ in range(n)]

    def stop(self) -> None:
        self.wallet_proc.stop()
        self.mint.stop()

    @property
    def logs(self) -> list[Path]:
        return [self.mint.log, self.wallet_proc.log]


async def _full_ids(session: aiohttp.ClientSession, mint: str) -> dict[str, str]:
    async with session.get(mint + "/v1/keysets") as resp:
        keysets = (await resp.json())["keysets"]
    return {k["id"]: k["id"] for k in keysets if k["unit"] == "sat" and k["active"]}


def _swap_body(token: str, ids: dict[str, str]) -> dict[str, Any]:
    """Inputs: the token's proofs (short ids mapped to full); outputs: fresh random blinds."""
    tok = parse_token(token)
    (active,) = ids.values()
    proofs = [
        replace(p, keyset_id=next(f for f in ids if f.startswith(p.keyset_id))) for p in tok.proofs
    ]
    outputs = []
    for amount in split_amount(tok.amount, [1 << i for i in range(21)]):
        secret = secrets.token_hex(32).encode()
        r = secrets.randbelow(CURVE_ORDER - 1) + 1
        b_ = crypto.blind(secret, r).format(compressed=True).hex()
        outputs.append({"amount": amount, "id": active, "B_": b_})
    return {"inputs": [p.to_json() for p in proofs], "outputs": outputs}


async def compare(
    mint: str, upstream: str, node: str, swap_tokens: list[str], node_tokens: list[str]
) -> dict[str, list[float]]:
    """Alternating, one at a time: raw swap, the upstream alone, an X-Cashu request (seconds)."""
    times: dict[str, list[float]] = {"swap": [], "upstream": [], "x_cashu": []}
    async with aiohttp.ClientSession() as session:
        ids = await _full_ids(session, mint)
        for warm in range(2):  # connections and the node's keyset cache
            async with session.post(upstream + "/v1/chat/completions", json=BODY) as r:
                await r.read()
            del warm
        for swap_token, node_token in zip(swap_tokens, node_tokens, strict=True):
            t0 = time.perf_counter()
            body = _swap_body(swap_token, ids)
            async with session.post(mint + "/v1/swap", json=body) as r:
                assert r.status == 200, await r.text()
                await r.read()
            times["swap"].append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            async with session.post(upstream + "/v1/chat/completions", json=BODY) as r:
                assert r.status == 200
                await r.read()
            times["upstream"].append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            async with session.post(
                node + "/v1/chat/completions", json=BODY, headers={"X-Cashu": node_token}
            ) as r:
                text = await r.text()
                assert r.status == 200, text
                assert r.headers.get("X-Cashu", "").startswith("cashu"), "no change token"
            times["x_cashu"].append(time.perf_counter() - t0)
    return times


def run_compare(
    mint: str, upstream: str, node: str, swap_tokens: list[str], node_tokens: list[str]
) -> dict[str, list[float]]:
    return asyncio.run(compare(mint, upstream, node, swap_tokens, node_tokens))
