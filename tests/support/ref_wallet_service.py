"""Nutshell's own wallet behind a tiny local HTTP API, for the interop tests.

Runs under `.venv-mint/bin/python` (the `cashu` package cannot live in the node's venv), started
by the `ref_wallet` fixture of `tests/support/mints.py`; run it with its cwd in a temp dir (the
`cashu` package reads ./.env on import).

    POST /token   {"mint": url, "amount": n, "version": 3|4}  -> {"token": "cashuA…|cashuB…"}
    POST /receive {"token": "…"}                               -> {"amount": n}  (net of fees)
    GET  /health                                               -> {"ok": true}

Errors answer 400 {"error": "…", "type": "<exception class>"}. Tokens are minted fresh from the
mint's FakeWallet backend (quotes are paid at once), so each one is new and unspent.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os

import uvicorn
from cashu.core.base import TokenV3, TokenV4
from cashu.wallet.helpers import deserialize_token_from_string
from cashu.wallet.wallet import Wallet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

DATA_DIR = "."
_wallets: dict[str, Wallet] = {}
_locks: dict[str, asyncio.Lock] = {}


async def wallet_for(mint: str) -> tuple[Wallet, asyncio.Lock]:
    mint = mint.rstrip("/")
    lock = _locks.setdefault(mint, asyncio.Lock())
    async with lock:
        if mint not in _wallets:
            name = hashlib.sha256(mint.encode()).hexdigest()[:12]
            w = await Wallet.with_db(mint, db=os.path.join(DATA_DIR, name), name="wallet")
            await w.load_mint()
            _wallets[mint] = w
    return _wallets[mint], lock


async def token(request: Request) -> JSONResponse:
    body = await request.json()
    w, lock = await wallet_for(body["mint"])
    amount, legacy = int(body["amount"]), int(body.get("version", 4)) == 3
    async with lock:  # one wallet, one NUT-13 counter: no concurrent mints on it
        quote = await w.request_mint(amount)
        proofs = await w.mint(amount, quote_id=quote.quote)
        await w.set_reserved_for_send(proofs, reserved=True)
        text = await w.serialize_proofs(proofs, legacy=legacy)
    return JSONResponse({"token": text})


async def receive(request: Request) -> JSONResponse:
    body = await request.json()
    tok = deserialize_token_from_string(body["token"])
    if isinstance(tok, TokenV4):
        mint, proofs = tok.mint, tok.proofs
    elif isinstance(tok, TokenV3):
        mint, proofs = tok.token[0].mint or "", tok.token[0].proofs
    else:
        raise ValueError("unknown token type")
    w, lock = await wallet_for(mint)
    async with lock:
        await w._expand_short_keyset_ids(proofs)
        keep, _ = await w.redeem(proofs)
    return JSONResponse({"amount": sum(p.amount for p in keep)})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": str(exc), "type": type(exc).__name__}, status_code=400)


def main() -> None:
    global DATA_DIR
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    DATA_DIR = args.dir
    app = Starlette(
        routes=[
            Route("/token", token, methods=["POST"]),
            Route("/receive", receive, methods=["POST"]),
            Route("/health", health),
        ],
        exception_handlers={Exception: error},
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
