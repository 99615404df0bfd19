"""A Lightning address host for the tests: LNURL-pay (LUD-06/16) answering with bolt11
invoices it signs itself, which a FakeWallet mint then pays like any other.

    host = LnurlHost().start()          # a ThreadedServer; host.url = http://127.0.0.1:port
    address = host.address("alice")     # alice@127.0.0.1:port
    host.asked                          # amounts (msat) the callback was asked for

Names with a behaviour: "liar" returns an invoice for 1 sat more than asked, "forger" one whose
description hash is not its metadata's, "broken" answers 500.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

from aiohttp import web
from coincurve import PrivateKey

from tests.support.servers import ThreadedServer
from wallet.bech32 import BECH32, CHARSET, _convert, _hrp_expand, _polymod


def _words(value: int, count: int) -> list[int]:
    return [(value >> 5 * (count - 1 - i)) & 31 for i in range(count)]


def _field(tag: str, data: list[int]) -> list[int]:
    return [CHARSET.index(tag), *_words(len(data), 2), *data]


def encode_bolt11(amount_msat: int, description_hash: bytes, key: PrivateKey) -> str:
    """A signed mainnet invoice (amounts in units of 100 msat: whole sat always fit)."""
    hrp = f"lnbc{amount_msat // 100}n" if amount_msat % 100 == 0 else f"lnbc{amount_msat * 10}p"
    data = _words(int(time.time()), 7)
    data += _field("p", _convert(os.urandom(32), 8, 5, True))
    data += _field("s", _convert(os.urandom(32), 8, 5, True))
    data += _field("h", _convert(description_hash, 8, 5, True))
    data += _field("x", _words(600, 2))
    signed = hrp.encode() + bytes(_convert(data, 5, 8, True))
    sig = key.sign_recoverable(signed, hasher=lambda m: hashlib.sha256(m).digest())
    data += _convert(sig, 8, 5, True)
    check = _polymod([*_hrp_expand(hrp), *data, 0, 0, 0, 0, 0, 0]) ^ BECH32
    data += [(check >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[d] for d in data)


class LnurlHost(ThreadedServer):
    def __init__(self) -> None:
        super().__init__(self._app)
        self.key = PrivateKey()
        self.asked: list[int] = []
        self.hits = 0

    def address(self, name: str) -> str:
        return f"{name}@127.0.0.1:{self.port}"

    def metadata(self, name: str) -> str:
        return json.dumps([["text/plain", f"pay {name}"], ["text/identifier", name]])

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/lnurlp/{name}", self._pay_request)
        app.router.add_get("/callback/{name}", self._callback)
        return app

    async def _pay_request(self, request: web.Request) -> web.Response:
        self.hits += 1
        name = request.match_info["name"]
        if name == "broken":
            return web.Response(status=500, text="down")
        return web.json_response(
            {
                "tag": "payRequest",
                "callback": f"{self.url}/callback/{name}",
                "minSendable": 1000,
                "maxSendable": 100_000_000,
                "metadata": self.metadata(name),
            }
        )

    async def _callback(self, request: web.Request) -> web.Response:
        self.hits += 1
        name = request.match_info["name"]
        amount = int(request.query["amount"])
        self.asked.append(amount)
        described = self.metadata("someone else" if name == "forger" else name)
        dh = hashlib.sha256(described.encode()).digest()
        amount += 1000 if name == "liar" else 0
        return web.json_response({"pr": encode_bolt11(amount, dh, self.key), "routes": []})
