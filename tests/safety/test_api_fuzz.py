"""schemathesis against a running node, from the node's own /openapi.json: no request it can
make ends in a 5xx. `make fuzz` runs it with many more examples (NUTGATE_FUZZ_EXAMPLES)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.conftest import NodeHandle
from tests.support.mints import ROOT, MintInfo, RefWallet

EXAMPLES = int(os.environ.get("NUTGATE_FUZZ_EXAMPLES", "8"))
SCHEMATHESIS = ROOT / ".venv" / "bin" / "schemathesis"


async def test_openapi_json_describes_the_routes(make_node: Callable[..., NodeHandle]) -> None:
    node = make_node()
    async with aiohttp.ClientSession() as session, session.get(f"{node.url}/openapi.json") as resp:
        spec = await resp.json()
    assert resp.status == 200 and spec["openapi"].startswith("3.")
    assert {"/v1/chat/completions", "/v1/wallet/withdraw", "/health"} <= set(spec["paths"])


async def funded_key(node: NodeHandle, token: str) -> str:
    """An sk- key backed by real ecash, so withdrawals can be paid (an operator grant is not)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{node.url}/v1/wallet/create", json={"cashu_token": token}) as resp,
    ):
        return str((await resp.json())["api_key"])


async def test_schemathesis_finds_no_server_error(
    make_node: Callable[..., NodeHandle], mint: MintInfo, ref_wallet: RefWallet, tmp_path: Path
) -> None:
    node = make_node(cashu={"mints": [mint.url]}, limits={"per_minute": 0, "per_hour": 0})
    key = await funded_key(node, await ref_wallet.token(mint.url, 2000))
    done = await asyncio.to_thread(
        subprocess.run,
        [
            str(SCHEMATHESIS),
            "run",
            f"{node.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            os.environ.get("NUTGATE_FUZZ_SEED", "1"),
            "-H",
            f"Authorization: Bearer {key}",
            "--no-color",
            "--output-sanitize",
            "false",
        ],
        cwd=tmp_path,  # schemathesis leaves a .schemathesis/ cache where it runs
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    node.assert_clean()
