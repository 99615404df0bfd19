"""The floor: the least a metered proxy can do, as a bare aiohttp pass-through.

    python -m bench.bare_proxy --port 9002 --upstream http://127.0.0.1:9001/v1 --keys keys.txt

Per request: look the Bearer key up in a dict, forward the body to the upstream over one
session, stream or relay the answer, parse `usage`, debit an in-memory balance. No database,
no reservations, no pricing beyond one multiplication.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

from node.cli import new_event_loop

BALANCES = web.AppKey("balances", dict)
SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


def _cost(usage: object) -> int:
    if not isinstance(usage, dict):
        return 0
    return int(usage.get("prompt_tokens", 0)) + 2 * int(usage.get("completion_tokens", 0))


async def chat(request: web.Request) -> web.StreamResponse:
    balances = request.app[BALANCES]
    key = request.headers.get("Authorization", "")[7:]
    if key not in balances:
        return web.json_response({"error": {"message": "unknown key"}}, status=401)
    raw = await request.read()
    body = orjson.loads(raw)
    session = request.app[SESSION]
    url = request.app[UPSTREAM] + "/chat/completions"
    headers = {"Content-Type": "application/json"}
    async with session.post(url, data=raw, headers=headers) as resp:
        if not body.get("stream"):
            answer = await resp.read()
            balances[key] -= _cost(orjson.loads(answer).get("usage"))
            return web.Response(body=answer, content_type="application/json")
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        last = b""
        async for data in resp.content.iter_any():
            await out.write(data)
            last = (last + data)[-4096:]
        for line in last.split(b"\n"):
            if line.startswith(b"data: {") and b'"usage"' in line:
                balances[key] -= _cost(orjson.loads(line[6:]).get("usage"))
        await out.write_eof()
        return out


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def make_app(upstream: str, keys: list[str]) -> web.Application:
    app = web.Application()
    app[BALANCES] = {k: 10**15 for k in keys}
    app[UPSTREAM] = upstream.rstrip("/")

    async def session(app: web.Application):  # type: ignore[no-untyped-def]
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
    args = parser.parse_args()
    keys = Path(args.keys).read_text().split()
    app = make_app(args.upstream, keys)
    # The node's event loop, so that the ratio compares the node's own work and nothing else.
    loop = new_event_loop()
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None, loop=loop)


if __name__ == "__main__":
    main()
