"""Money paths probed from outside: ways a client (or someone who once held its token) might
take more than it paid, or make the node answer a 500, each on a real node and real mints."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

import wallet as cashu
from tests.conftest import NodeHandle
from tests.support.mints import MintInfo, RefWallet, own_mint
from tests.support.money import assert_proofs_cover, call
from tests.support.servers import ThreadedServer
from tests.test_lightning import HELLO, payee_invoice
from wallet.mint_client import MintClient

CREATE = "/v1/wallet/create"
TOPUP = "/v1/wallet/topup"
WITHDRAW = "/v1/wallet/withdraw"


def foreign_node(make_node: Callable[..., NodeHandle], mint: MintInfo) -> NodeHandle:
    return make_node(
        cashu={"mints": [mint.url], "accept_foreign": True},
        lightning={"watch_interval_s": 0.2, "lnurl_allow_local": True},  # fee_mint: loopback
    )


async def test_a_melted_foreign_token_sent_again_hands_out_no_key_once_it_is_spent_from(
    make_node: Callable[..., NodeHandle], mint: MintInfo, fee_mint: MintInfo, ref_wallet: RefWallet
) -> None:
    """Whoever gave the token away still knows it: once the key it funded has been used, the
    key is the only way in, as for a trusted mint's token (`Payments.create_key`)."""
    node = foreign_node(make_node, mint)
    token = await ref_wallet.token(fee_mint.url, 100)
    body = {"cashu_token": token, "accept_fees_sat": 10}
    status, _, made = await call(node, "POST", CREATE, json=body)
    assert status == 200, made
    key = made["api_key"]
    status, _, _ = await call(node, "POST", "/v1/chat/completions", key, json=HELLO)
    assert status == 200
    before = node.balance(key)
    status, _, again = await call(node, "POST", CREATE, json=body)
    assert status == 400 and again["error"]["code"] == "token_spent", again
    assert key not in str(again)
    assert node.balance(key) == before
    assert_proofs_cover(node)


async def test_a_foreign_token_topped_up_then_sent_to_create_is_refused_not_a_500(
    make_node: Callable[..., NodeHandle], mint: MintInfo, fee_mint: MintInfo, ref_wallet: RefWallet
) -> None:
    node = foreign_node(make_node, mint)
    owner = node.new_key(1_000)
    token = await ref_wallet.token(fee_mint.url, 100)
    body = {"cashu_token": token, "accept_fees_sat": 10}
    status, _, added = await call(node, "POST", TOPUP, owner, json=body)
    assert status == 200, added
    credited = node.balance(owner)
    status, _, again = await call(node, "POST", CREATE, json=body)
    assert status == 400 and again["error"]["code"] == "token_spent", again
    other = node.new_key(1_000)  # nor is it credited, or said to be, to another account
    status, _, topped = await call(node, "POST", TOPUP, other, json=body)
    assert status == 400 and topped["error"]["code"] == "token_spent", topped
    assert node.balance(owner) == credited and node.balance(other) == 1_000
    node.assert_clean()  # (the keys' operator credit is backed by no proofs)


class _Host:
    """A web server that counts what reaches it: `hits` per path, `sent` bytes streamed."""

    def __init__(self, routes: Callable[[_Host], list[web.RouteDef]]) -> None:
        self.hits: dict[str, int] = {}
        self.sent = 0
        self.routes = routes

    def app(self) -> web.Application:
        @web.middleware
        async def count(request: web.Request, handler: Any) -> web.StreamResponse:
            self.hits[request.path] = self.hits.get(request.path, 0) + 1
            response: web.StreamResponse = await handler(request)
            return response

        app = web.Application(middlewares=[count])
        app.add_routes(self.routes(self))
        return app


def _relabelled(token: str, mint_url: str) -> str:
    parsed = cashu.parse_token(token)
    return cashu.serialize_v4(parsed.with_mint(mint_url))


async def _refused_create(
    node: NodeHandle, ref_wallet: RefWallet, fee_mint: MintInfo, foreign_url: str
) -> None:
    """/v1/wallet/create with a token relabelled as a mint at `foreign_url`: a clear refusal."""
    token = _relabelled(await ref_wallet.token(fee_mint.url, 100), foreign_url)
    body = {"cashu_token": token, "accept_fees_sat": 10}
    status, _, refused = await call(node, "POST", CREATE, json=body)
    assert 400 <= status < 600 and status != 500, refused


async def test_a_foreign_mint_cannot_redirect_the_node_elsewhere(
    make_node: Callable[..., NodeHandle], mint: MintInfo, fee_mint: MintInfo, ref_wallet: RefWallet
) -> None:
    """The client names a foreign mint: a redirect from it would take the node to a host it
    never checked (inside its own network: the host check is on the mint's URL only)."""
    inside = _Host(lambda host: [web.get("/secret", _json({"detail": "inside"}))])
    target = ThreadedServer(inside.app).start()
    redirect = web.HTTPFound(f"{target.url}/secret")

    async def moved(request: web.Request) -> web.Response:
        raise redirect

    liar = _Host(lambda host: [web.route("*", "/{tail:.*}", moved)])
    server = ThreadedServer(liar.app).start()
    try:
        node = foreign_node(make_node, mint)
        await _refused_create(node, ref_wallet, fee_mint, server.url)
        assert liar.hits, "the foreign mint was not asked"
        assert not inside.hits, "the node followed the foreign mint's redirect"
        node.assert_clean()
    finally:
        server.stop()
        target.stop()


async def test_a_foreign_mint_streaming_an_endless_answer_is_cut_off(
    make_node: Callable[..., NodeHandle], mint: MintInfo, fee_mint: MintInfo, ref_wallet: RefWallet
) -> None:
    """An unpaid request costs the node no unbounded memory, whatever the mint it names."""

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        chunk = b" " * 65536
        try:
            for _ in range(4096):  # 256 MB of whitespace before any JSON
                await response.write(chunk)
                liar.sent += len(chunk)
        except (ConnectionError, RuntimeError):
            pass
        return response

    liar = _Host(lambda host: [web.get("/v1/keysets", endless)])
    server = ThreadedServer(liar.app).start()
    try:
        node = foreign_node(make_node, mint)
        await _refused_create(node, ref_wallet, fee_mint, server.url)
        assert liar.sent < 32 * 2**20, f"the node read {liar.sent} bytes of one answer"
        node.assert_clean()
    finally:
        server.stop()


def _json(payload: dict[str, Any]) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(payload)

    return handler


@pytest.fixture(scope="module")
def small_keys_mint() -> Iterator[MintInfo]:
    """A mint whose keys stop at 2**15 sat (CDK's mints stop at 2**31 by default)."""
    with own_mint("small_keys_mint", MAX_ORDER="16") as info:
        yield info


async def test_a_forged_amount_no_key_signs_is_refused_before_any_work(
    make_node: Callable[..., NodeHandle], small_keys_mint: MintInfo, ref_wallet: RefWallet
) -> None:
    """An unpaid token claiming 2**40 sat in one proof of a mint whose largest key is 2**15
    would have the node build 2**25 outputs for it before the mint refused it."""
    node = make_node(cashu={"mints": [small_keys_mint.url]})
    token = cashu.parse_token(await ref_wallet.token(small_keys_mint.url, 8))
    forged = cashu.serialize_v4(token.with_proofs([replace(token.proofs[0], amount=2**40)]))
    quick = aiohttp.ClientTimeout(total=10)
    for headers in ({"Authorization": f"Bearer {forged}"}, {"X-Cashu": forged}):
        status, _, body = await call(
            node, "POST", "/v1/chat/completions", headers=headers, json=HELLO, timeout=quick
        )
        assert (status, body["error"]["code"]) == (400, "token_invalid"), body
    status, _, body = await call(node, "POST", CREATE, json={"cashu_token": forged}, timeout=quick)
    assert (status, body["error"]["code"]) == (400, "token_invalid"), body
    node.assert_clean()


class _LyingMint:
    """A "mint" that says it paid every invoice it is asked to melt into, paying none."""

    KEYSET = "00" + "ab" * 7

    def __init__(self) -> None:
        self.melts = 0

    def routes(self, host: _Host) -> list[web.RouteDef]:
        async def keysets(request: web.Request) -> web.Response:
            ks = {"id": self.KEYSET, "unit": "sat", "active": True, "input_fee_ppk": 0}
            return web.json_response({"keysets": [ks]})

        async def melt_quote(request: web.Request) -> web.Response:
            invoice = cashu.decode_bolt11((await request.json())["request"])
            amount = (invoice.amount_msat or 0) // 1000
            return web.json_response(
                {"quote": "q", "amount": amount, "fee_reserve": 1, "state": "UNPAID"}
            )

        async def melt(request: web.Request) -> web.Response:
            self.melts += 1
            return web.json_response({"quote": "q", "amount": 1, "state": "PAID"})

        return [
            web.get("/v1/keysets", keysets),
            web.post("/v1/melt/quote/bolt11", melt_quote),
            web.post("/v1/melt/bolt11", melt),
        ]

    def token(self, url: str, sats: int) -> str:
        """A token of this "mint": no signature in it is real."""
        proof = cashu.Proof(sats, self.KEYSET, secrets.token_hex(32), G)
        return cashu.serialize_v4(cashu.Token(mint=url, proofs=[proof], unit="sat"))


G = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"  # a valid point


async def test_foreign_tokens_whose_mint_lies_leave_no_more_open_invoices_than_allowed(
    make_node: Callable[..., NodeHandle],
) -> None:
    """Each accepted foreign token leaves an invoice of a trusted mint open (and watched: a
    mint call a round) until it is paid; a mint that only says it paid leaves it open for good.
    Lightning's cap on open invoices holds for them as for invoices asked for directly."""
    lying = _LyingMint()
    liar = _Host(lying.routes)
    server = ThreadedServer(liar.app).start()
    # a trusted mint whose invoices stay unpaid (the shared mints' are paid at once)
    unpaid = own_mint("unpaid_mint", FAKEWALLET_BRR="false")
    try:
        mint = unpaid.__enter__()
        node = make_node(
            cashu={"mints": [mint.url], "accept_foreign": True},
            lightning={"lnurl_allow_local": True, "max_open_invoices": 2},
        )
        answers = []
        for _ in range(4):
            body = {"cashu_token": lying.token(server.url, 1000), "accept_fees_sat": 10}
            answers.append(await call(node, "POST", CREATE, json=body))
        codes = [(status, answer["error"]["code"]) for status, _, answer in answers]
        assert codes[:2] == [(503, "foreign_pending")] * 2, codes
        assert codes[2:] == [(503, "lightning_unavailable")] * 2, codes
        row = node.db.query_one("SELECT COUNT(*) FROM wallet_invoices WHERE state = 'unpaid'")
        assert row is not None and row[0] == 2
        assert lying.melts == 2
        node.assert_clean()
    finally:
        unpaid.__exit__(None, None, None)
        server.stop()


async def test_one_idempotency_key_names_one_payout_whether_token_or_lightning(
    make_node: Callable[..., NodeHandle], mint: MintInfo, fee_mint: MintInfo, ref_wallet: RefWallet
) -> None:
    """A key that paid a token out does not also pay an invoice, nor the other way round, at
    once or one after the other: the second is a 409 and takes nothing."""
    node = make_node(cashu={"mints": [mint.url]}, lightning={"min_sats": 1})
    payee = make_node(cashu={"mints": [fee_mint.url]}, lightning={"min_sats": 1})
    status, _, made = await call(
        node, "POST", CREATE, json={"cashu_token": await ref_wallet.token(mint.url, 200)}
    )
    assert status == 200, made
    key = made["api_key"]
    as_token = {"amount": 15}
    for n, first in enumerate(("token", "invoice", "both")):
        same = {"Idempotency-Key": f"one-payout-{n}"}
        as_invoice = {"invoice": await payee_invoice(payee, 14)}
        before = node.balance(key)
        answers: list[tuple[int, Any, Any]]
        if first == "both":
            answers = list(
                await asyncio.gather(
                    call(node, "POST", WITHDRAW, key, headers=same, json=as_token),
                    call(node, "POST", WITHDRAW, key, headers=same, json=as_invoice),
                )
            )
        else:
            bodies = [as_token, as_invoice] if first == "token" else [as_invoice, as_token]
            answers = [
                await call(node, "POST", WITHDRAW, key, headers=same, json=b) for b in bodies
            ]
        paid = [answer for status, _, answer in answers if status == 200]
        refused = [(status, answer) for status, _, answer in answers if status != 200]
        assert len(paid) == 1, answers
        ((status, answer),) = refused
        assert status == 409, answer
        if first != "both":
            assert answer["error"]["code"] == "idempotency_key_reused", answer
        taken = 15_000 if "cashu_token" in paid[0] else (14 + paid[0]["fee_sat"]) * 1000
        assert node.balance(key) == before - taken
    node.assert_clean()
    assert_proofs_cover(node)


async def test_a_mint_answer_that_arrives_in_pieces_is_read_whole() -> None:
    """The bound on a mint's answer must not cut a long, honest one short: an answer that
    arrives in several pieces (a keyset list of ~1 MB, written 50 kB at a time) is read to its
    end. (`StreamReader.read(n)` returns what has arrived so far, not n bytes.)"""
    keysets = [
        {"id": f"00{i:014x}", "unit": "sat", "active": i == 0, "input_fee_ppk": 0}
        for i in range(12_000)
    ]
    body = orjson.dumps({"keysets": keysets})

    async def answer(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        for start in range(0, len(body), 50_000):
            await resp.write(body[start : start + 50_000])
            await asyncio.sleep(0.002)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/v1/keysets", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as session:
            client = MintClient(session, f"http://127.0.0.1:{port}", 10.0)
            listed = await client.keysets()
    finally:
        await runner.cleanup()
    assert len(body) > 500_000
    assert len(listed) == len(keysets)


@pytest.mark.parametrize("expiry", ["9" * 5000, "²³", "1e9"])
async def test_a_key_expiry_time_no_integer_reads_is_a_400_before_any_token_is_looked_at(
    node: NodeHandle, expiry: str
) -> None:
    """Routstr's Key-Expiry-Time on /v1/wallet/create: digits int() refuses (4300 and more),
    or digits that are not ASCII ("²".isdigit() is true), were a 500 before any credential."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{node.url}/v1/wallet/create",
            json={"cashu_token": "cashuBnotatoken"},
            headers={"Key-Expiry-Time": expiry},
        ) as resp,
    ):
        body = await resp.json()
    assert resp.status == 400, body
    assert body["error"]["param"] == "Key-Expiry-Time"
