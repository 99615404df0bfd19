"""The floor: the least a metered proxy can do, as a bare aiohttp pass-through.

    python -m bench.bare_proxy --port 9002 --upstream http://127.0.0.1:9001/v1 --keys keys.txt

Per request: look the Bearer key up in a dict, forward the body to the upstream over one
session, stream or relay the answer, parse `usage`, debit an in-memory balance. No database,
no reservations, no pricing beyond one multiplication.

Two options add, one at a time, the duties a paid node cannot drop (see bench/floor.py):
`--ledger DB` holds and charges through the node's own ledger (a reservation committed before
the upstream call, a settlement after, each durable, group-committed as in the node) instead
of the in-memory balance; `--access-log` writes the node's JSON access line per request.
"""

from __future__ import annotations

import argparse
import logging
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

from node.cli import new_event_loop
from node.db.open import open_store
from node.logs import configure_logging
from node.money.ledger import MIGRATIONS, Ledger, hash_key

BALANCES = web.AppKey("balances", dict)
SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)
LEDGER = web.AppKey("ledger", Ledger)
ACCESS = web.AppKey("access", bool)

MAX_COST = 100_000  # what each request holds with --ledger: more than any answer costs
access_log = logging.getLogger("nutgate.access")
request_ids = random.Random()


def _cost(usage: object) -> int:
    if not isinstance(usage, dict):
        return 0
    return int(usage.get("prompt_tokens", 0)) + 2 * int(usage.get("completion_tokens", 0))


async def chat(request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()
    balances, ledger = request.app[BALANCES], request.app.get(LEDGER)
    key = request.headers.get("Authorization", "")[7:]
    if key not in balances:
        return web.json_response({"error": {"message": "unknown key"}}, status=401)
    raw = await request.read()
    body = orjson.loads(raw)
    request_id = f"{request_ids.getrandbits(128):032x}"
    if ledger is not None and not await ledger.reserve(balances[key], request_id, MAX_COST):
        return web.json_response({"error": {"message": "insufficient balance"}}, status=402)
    cost = 0
    try:
        response, cost = await _forward(request, raw, bool(body.get("stream")))
    finally:
        if ledger is not None:
            await ledger.settle(request_id, cost)
        elif cost:
            balances[key] -= cost
    if request.app[ACCESS]:
        _access_line(request, request_id, started, cost)
    return response


async def _forward(
    request: web.Request, raw: bytes, stream: bool
) -> tuple[web.StreamResponse, int]:
    session = request.app[SESSION]
    url = request.app[UPSTREAM] + "/chat/completions"
    headers = {"Content-Type": "application/json"}
    async with session.post(url, data=raw, headers=headers) as resp:
        if not stream:
            answer = await resp.read()
            cost = _cost(orjson.loads(answer).get("usage"))
            return web.Response(body=answer, content_type="application/json"), cost
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        last = b""
        async for data in resp.content.iter_any():
            await out.write(data)
            last = (last + data)[-4096:]
        cost = 0
        for line in last.split(b"\n"):
            if line.startswith(b"data: {") and b'"usage"' in line:
                cost = _cost(orjson.loads(line[6:]).get("usage"))
        await out.write_eof()
        return out, cost


def _access_line(request: web.Request, request_id: str, started: float, cost: int) -> None:
    fields = {
        "request_id": request_id,
        "method": request.method,
        "path": request.path,
        "status": 200,
        "cost_msat": cost,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
    }
    access_log.info("%s %s %s", request.method, request.path, 200, extra={"fields": fields})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def make_app(
    upstream: str, keys: list[str], ledger_db: Path | None = None, access: bool = False
) -> web.Application:
    app = web.Application()
    app[BALANCES] = {k: 10**15 for k in keys}
    app[UPSTREAM] = upstream.rstrip("/")
    app[ACCESS] = access
    if ledger_db is not None:
        ledger = app[LEDGER] = Ledger(open_store("", ledger_db, {"node": MIGRATIONS}))
        # The balances dict now maps each key to its account.
        app[BALANCES] = {k: ledger.grant(hash_key(k), 10**15, ref="bench") for k in keys}

    async def session(app: web.Application) -> AsyncIterator[None]:
        app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(session)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--keys", required=True, help="file of API keys, one a line")
    parser.add_argument("--ledger", type=Path, help="charge through the node's ledger in this db")
    parser.add_argument("--access-log", action="store_true", help="the node's access line")
    args = parser.parse_args()
    keys = Path(args.keys).read_text().split()
    if args.access_log:
        configure_logging("INFO", "json")
    app = make_app(args.upstream, keys, args.ledger, args.access_log)
    # The node's event loop, so that the ratio compares the node's own work and nothing else.
    loop = new_event_loop()
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None, loop=loop)


if __name__ == "__main__":
    main()
