"""Receive latency vs a raw NUT-03 swap on the same mint, in the same run (target: <= 1.2x).

    .venv/bin/python bench/bench_receive.py [--n 40] [--amount 64] [--fee]

Starts a Nutshell mint (FakeWallet) and Nutshell's wallet (tests/support), mints 2*n tokens,
then alternates: a raw swap of one token (POST /v1/swap with outputs blinded beforehand, so only
the HTTP round trip and the mint's work are timed) and `Wallet.receive` of the next one (parse,
counters + pending row committed, swap, unblind + DLEQ checks, proofs + credit committed).
Prints the medians and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from node.db.sqlite import SqliteStore
from tests.support.mints import RefWallet, _Farm
from wallet import (
    MIGRATIONS,
    Wallet,
    crypto,
    parse_token,
)
from wallet.mint_client import BlindedMessage, MintClient
from wallet.outputs import input_fee, split_amount
from wallet.tokens import Proof


async def raw_swap_inputs(
    client: MintClient, token: str
) -> tuple[list[Proof], list[BlindedMessage]]:
    tok = parse_token(token)
    listing = {k.id: k for k in await client.keysets()}
    active = next(k for k in listing.values() if k.active and k.unit == "sat")
    ids = {short: next(i for i in listing if i.startswith(short)) for short in tok.keyset_ids}
    proofs = [p.__class__(p.amount, ids[p.keyset_id], p.secret, p.c) for p in tok.proofs]
    fee = input_fee(listing[p.keyset_id].input_fee_ppk for p in proofs)
    amounts = split_amount(tok.amount - fee, [2**i for i in range(40)])
    outputs = [
        BlindedMessage(
            a,
            active.id,
            crypto.blind(secrets.token_hex(32).encode(), 1 + secrets.randbelow(crypto.N - 1))
            .format()
            .hex(),
        )
        for a in amounts
    ]
    return proofs, outputs


async def bench(n: int, amount: int, fee: bool) -> None:
    farm = _Farm()
    farm.start_all()
    try:
        mint_url = farm.get("fee_mint" if fee else "mint").url
        ref = RefWallet(farm.get("ref_wallet").url)
        print(f"minting {2 * n} tokens of {amount} sat at {mint_url} ...", flush=True)
        tokens = [await ref.token(mint_url, amount) for _ in range(2 * n)]
        with tempfile.TemporaryDirectory() as tmp:
            db = SqliteStore(Path(tmp) / "bench.sqlite3", {"wallet": MIGRATIONS})
            noop = lambda *args: None  # noqa: E731
            async with aiohttp.ClientSession() as http:
                wallet = Wallet(db, os.urandom(64), [mint_url], http, noop, noop, noop)
                client = MintClient(http, mint_url, 10.0)
                await wallet.receive(tokens.pop(), "warm-up")  # loads keysets and keys once
                raw_t, recv_t = [], []
                for i in range(n - 1):
                    proofs, outputs = await raw_swap_inputs(client, tokens[2 * i])
                    t0 = time.perf_counter()
                    await client.swap(proofs, outputs)
                    raw_t.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    await wallet.receive(tokens[2 * i + 1], f"bench-{i}")
                    recv_t.append(time.perf_counter() - t0)
            db.close()
        raw, recv = statistics.median(raw_t) * 1000, statistics.median(recv_t) * 1000
        print(f"proofs per token: {len(parse_token(tokens[0]).proofs)}; samples: {len(raw_t)}")
        for name, samples in (("raw swap", raw_t), ("receive", recv_t)):
            med, p90 = statistics.median(samples), sorted(samples)[int(len(samples) * 0.9)]
            print(f"{name:9} median {med * 1000:7.2f} ms   p90 {p90 * 1000:7.2f} ms")
        print(f"ratio     {recv / raw:.2f}x  (target <= 1.2x)")
    finally:
        farm.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=40, help="pairs of samples")
    parser.add_argument("--amount", type=int, default=64, help="sat per token")
    parser.add_argument("--fee", action="store_true", help="use the mint with input fees")
    args = parser.parse_args()
    asyncio.run(bench(args.n, args.amount, args.fee))


if __name__ == "__main__":
    main()
