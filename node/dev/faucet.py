"""A funded test token from a FakeWallet mint (Nutshell's dev backend: its quotes pay themselves).

    python -m node.dev.faucet http://mint:3338 1000      # prints a cashuB token of 1000 sat

The token names the mint by the URL given: use the one the node trusts (`[cashu] mints`). In
docker/compose.yaml this is the `faucet` service: `docker compose -f docker/compose.yaml run
--rm faucet` (or `... run --rm faucet http://mint:3338 500`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import aiohttp

from node.dev.devmint import DevStackError, faucet_token
from wallet.errors import WalletError


async def _token(mint_url: str, amount: int) -> str:
    async with aiohttp.ClientSession() as session:
        return await faucet_token(session, mint_url.rstrip("/"), amount)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mint", help="the mint's URL, as the node trusts it")
    parser.add_argument("amount", type=int, nargs="?", default=1000, help="sat (default 1000)")
    args = parser.parse_args(argv)
    if args.amount < 1:
        sys.exit("faucet: the amount must be at least 1 sat")
    try:
        print(asyncio.run(_token(args.mint, args.amount)), flush=True)
    except (aiohttp.ClientError, TimeoutError, WalletError, DevStackError) as exc:
        sys.exit(f"faucet: no token from {args.mint}: {exc.__class__.__name__}: {exc}")


if __name__ == "__main__":
    main()
