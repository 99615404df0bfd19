"""The group commit's PostgreSQL batches two ways, in turn: on a writer thread as a pipeline
with bound values (`Store.apply`), and as one query from the event loop with prepared
statements (`Store.send`, node.db.pg_batch). Each round: a batch of N reservations, then a
batch of their N settlements (each with its request's record, as a paid request's is).

    .venv/bin/python -m bench.pg_batches                  # batches of 4 and 16, 40 rounds
    .venv/bin/python -m bench.pg_batches --sizes 32 --rounds 100

Prints each way's wall time a batch (p50, mean) and the process's CPU a batch (the loop's and
the writer thread's together). PostgreSQL direct, on a new database dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable

from bench.pg import SERVER, admin
from node.db.store import Outcome, Store, Write
from node.money import ledger_pg, records
from node.money.ledger import MIGRATIONS, Ledger, hash_key
from node.money.records import Record, Records

Way = Callable[[Store, list[Write]], Awaitable[list[Outcome]]]


async def on_a_thread(db: Store, writes: list[Write]) -> list[Outcome]:
    assert db.writer is not None
    results = await asyncio.wrap_future(db.writer.submit(db.apply, writes))
    return [(True, result) for result in results]


async def from_the_loop(db: Store, writes: list[Write]) -> list[Outcome]:
    return await db.send(writes)


def record(rid: str, account: int) -> Record:
    now = int(time.time())
    return Record(rid, account, account, now, "chat", "bench-model", "up", 9, 9, 0, 0, 500, "ok", 3)


def also(books: Records, made: Record) -> ledger_pg.Also:
    return lambda conn, charged: books.write(conn, made._replace(cost_msat=charged))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    name = f"nutgate_batches_{secrets.token_hex(4)}"
    admin(f"CREATE DATABASE {name}")
    try:
        from node.db.postgres import PostgresStore

        db = PostgresStore(f"{SERVER}/{name}", {"node": MIGRATIONS, "records": records.MIGRATIONS})
        ledger, books = Ledger(db), Records(db, history_days=30)
        accounts = [ledger.grant(hash_key(f"sk-{i}"), 10**12) for i in range(8)]
        ways: dict[str, Way] = {"writer thread": on_a_thread, "one query": from_the_loop}
        for size in args.sizes:
            times: dict[str, list[float]] = {way: [] for way in ways}
            cpu = dict.fromkeys(ways, 0.0)
            for i in range(args.rounds + 5):
                for way, run in ways.items():
                    rids = [secrets.token_hex(8) for _ in range(size)]
                    reserve = [
                        ledger_pg.reserve(
                            accounts[j % 8], rid, 1000, 10, "m", None, accounts[j % 8], "b"
                        )
                        for j, rid in enumerate(rids)
                    ]
                    settle = [
                        ledger_pg.settle(rid, 500, also(books, record(rid, accounts[j % 8])))
                        for j, rid in enumerate(rids)
                    ]
                    for writes in (reserve, settle):
                        t0, c0 = time.perf_counter(), time.process_time()
                        outcomes = await run(db, writes)
                        if i >= 5:  # the first rounds prepare and warm up
                            times[way].append(time.perf_counter() - t0)
                            cpu[way] += time.process_time() - c0
                        assert all(ok for ok, _ in outcomes), outcomes
            for way, seen in times.items():
                print(
                    f"batch of {size:3d}, {way:13s}: p50 {statistics.median(seen) * 1e3:.2f} ms,"
                    f" mean {statistics.mean(seen) * 1e3:.2f} ms,"
                    f" CPU {cpu[way] / len(seen) * 1e3:.2f} ms a batch"
                )
        assert not ledger.open_reservations()
        db.close()
    finally:
        admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    asyncio.run(main())
