"""Run one wallet operation in a child process, for the crash tests.

    python -m tests.wallet.crash_child CRASH_AT DB SEED_HEX MINT receive TOKEN PURPOSE
    python -m tests.wallet.crash_child CRASH_AT DB SEED_HEX MINT send AMOUNT PURPOSE
    python -m tests.wallet.crash_child CRASH_AT DB SEED_HEX MINT invoice AMOUNT PURPOSE
    python -m tests.wallet.crash_child CRASH_AT DB SEED_HEX MINT melt BOLT11 PURPOSE

The wallet's checkpoint CRASH_AT (e.g. receive-after-swap) SIGKILLs this process.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp

from tests.support.crash_serve import kill_at
from tests.wallet.conftest import Ledger, open_db
from wallet import Wallet


async def main(
    crash_at: str, db_path: str, seed_hex: str, mint: str, op: str, arg: str, purpose: str
) -> None:
    db = open_db(Path(db_path))
    ledger = Ledger(db)
    async with aiohttp.ClientSession() as http:
        hooks = ledger.credit, ledger.debit, ledger.refund
        w = Wallet(db, bytes.fromhex(seed_hex), [mint], http, *hooks, checkpoint=kill_at(crash_at))
        if op == "receive":
            print(await w.receive(arg, purpose))
        elif op == "invoice":  # ref = purpose; FakeWallet pays it at once
            await w.create_invoice(mint, int(arg), purpose, purpose)
            print(await w.settle_invoice(purpose))
        elif op == "melt":
            print(await w.pay_invoice(arg, purpose, mint))
        else:
            print(await w.send(int(arg), purpose))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:8]))
