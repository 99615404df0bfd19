"""Adversarial: work the node does for requests nobody pays for.

Rule (issue 20, brief): an unpaid request (no credential, a refused token) costs the node no
more than reading it; it never stalls the event loop that serves every paying client. Each
test sends one hostile request with no payment (it ends in a 4xx) while a probe asks /health
every few ms, and compares the longest /health wait with the one during a harmless request
of the same size. A stall of a second per request, at the default 60 requests a minute per IP,
keeps one core busy from a single address.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable

import aiohttp
import orjson
import pytest

from tests.conftest import NodeHandle
from tests.support.cashu_ts import CashuTsError, cashu_ts_or_skip
from tests.support.mints import MintInfo
from wallet.tokens import Dleq, parse_token, serialize_v4

Send = Callable[[aiohttp.ClientSession], Awaitable[int]]


async def _probe(http: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> float:
    longest = 0.0
    while not stop.is_set():
        start = time.perf_counter()
        async with http.get(f"{url}/health") as resp:
            await resp.read()
        longest = max(longest, time.perf_counter() - start)
        await asyncio.sleep(0.005)
    return longest


async def stall_s(node: NodeHandle, send: Send, runs: int = 2) -> tuple[float, set[int]]:
    """The longest /health wait while `send` runs (the least over `runs`), and its statuses."""
    least, statuses = float("inf"), set()
    async with aiohttp.ClientSession() as http:
        for _ in range(runs):
            stop = asyncio.Event()
            probe = asyncio.create_task(_probe(http, node.url, stop))
            await asyncio.sleep(0.05)
            statuses.add(await send(http))
            await asyncio.sleep(0.05)
            stop.set()
            least = min(least, await probe)
    return least, statuses


def post_json(node: NodeHandle, raw: bytes, path: str = "chat/completions") -> Send:
    async def send(http: aiohttp.ClientSession) -> int:
        headers = {"Content-Type": "application/json"}
        async with http.post(f"{node.url}/v1/{path}", data=raw, headers=headers) as resp:
            await resp.read()
            return resp.status

    return send


def post_audio(node: NodeHandle, clip: bytes, name: str) -> Send:
    async def send(http: aiohttp.ClientSession) -> int:
        form = aiohttp.FormData({"model": "test-model"})
        form.add_field("file", clip, filename=name, content_type="application/octet-stream")
        async with http.post(f"{node.url}/v1/audio/transcriptions", data=form) as resp:
            await resp.read()
            return resp.status

    return send


BODY_BYTES = 10_000_000  # under the default [limits] max_body_bytes (10 MiB)


async def test_a_body_of_many_tiny_parts_costs_no_more_than_its_bytes(node: NodeHandle) -> None:
    """Attack: POST /v1/chat/completions with no credential and a 10 MB body of ~190 000 empty
    text parts. Before it answers 402, the node parses it, checks every message
    (`_check_messages`), walks it for stored ids (`stored._files`, which formats a path
    string for every list element and dict key) and again for the billing shape
    (`billing._scan_prompt`), and prices it for the 402: ~1.5-2 s of event loop, /health
    stalled >1 s, against ~0.05 s for a 10 MB body of one string.

    Impact: one unpaid request a second from one address keeps the node's loop busy; every
    paying client's request and stream waits behind it.

    Expected: the cost of refusing an unpaid request is bounded by its size in bytes, not by
    its number of JSON nodes: a body of more objects than any real request holds is refused
    (400) by a count at C speed before it is parsed; one under the bound is parsed and walked
    once, with paths built only for a hit (node/http/web.py, node/proxy/stored.py,
    node/pricing/billing.py).
    """
    part = {"role": "user", "content": [{"type": "text", "text": ""}]}
    tiny = orjson.dumps({"model": "test-model", "messages": [part] * 180_000})
    one = orjson.dumps(
        {"model": "test-model", "messages": [{"role": "user", "content": "x" * len(tiny)}]}
    )
    assert len(tiny) < BODY_BYTES
    baseline, statuses = await stall_s(node, post_json(node, one))
    stalled, hostile = await stall_s(node, post_json(node, tiny))
    assert statuses == {402}
    assert hostile == {400}
    assert stalled < baseline + 0.4, (stalled, baseline)


async def test_a_wav_of_empty_chunks_costs_no_more_than_its_bytes(node: NodeHandle) -> None:
    """Attack: POST /v1/audio/transcriptions, no credential, a 10 MB "WAV" made of 1.3 million
    empty `JUNK` chunks. The route times the clip (`AudioMeter` -> `wav_seconds`) before it
    looks at the payment: a Python loop over every chunk, ~0.45 s of stalled event loop per
    request, against ~0.01 s for the same bytes under another name (size bound at once).

    Impact: ~0.5 s of loop per unpaid request, repeatable at the rate limit.

    Expected: a WAV's header is read in a bounded number of chunks (the `fmt ` and `data`
    chunks come within the first few); past that the clip is timed by its size, or refused
    (node/audio.py).
    """
    junk = b"JUNK\0\0\0\0" * ((BODY_BYTES - 12) // 8)
    wav = b"RIFF" + (len(junk) + 4).to_bytes(4, "little") + b"WAVE" + junk
    baseline, statuses = await stall_s(node, post_audio(node, b"\0" * len(wav), "clip.mp3"))
    stalled, hostile = await stall_s(node, post_audio(node, wav, "clip.wav"))
    assert statuses == hostile == {402}
    assert stalled < baseline + 0.2, (stalled, baseline)


@pytest.mark.xfail(
    raises=CashuTsError,
    strict=False,
    reason="only where cashu-ts cannot mint the attack's 1000 proofs (seen under heavy load: "
    "'fetch failed'); the fix (DLEQs checked off the event loop) passes wherever it can",
)
async def test_a_token_with_a_bad_last_dleq_costs_no_more_than_one_with_a_bad_first(
    make_node: Callable[..., NodeHandle], mint: MintInfo
) -> None:
    """Attack: own 1000 proofs of 1 sat (1000 sat, minted once) and send them as a token whose
    LAST proof's DLEQ is tampered, to POST /v1/wallet/create (a JSON body: no header size
    limit). The wallet checks the 999 good DLEQs (elliptic-curve work, ~0.3 ms each) on the
    event loop, then refuses the token: nothing reaches the mint, the proofs stay the
    attacker's, and the same token can be sent again forever. ~0.27 s of stalled loop per
    request, against ~0.03 s when the FIRST DLEQ is bad.

    Impact: unpaid CPU at the rate limit (~16 s a minute per address), for a one-off 1000 sat.

    Expected: a token the node redeems at once is checked by the mint's swap, which verifies
    every signature anyway (NUT-12 DLEQs serve offline receivers): skip the DLEQ check on
    receive, or run it off the event loop after cheap checks (wallet/receive.py).
    """
    node = make_node(cashu={"mints": [mint.url]})
    token = parse_token(await cashu_ts_or_skip().token(mint.url, 1000, proofs=1000))

    def bad_dleq_at(index: int) -> bytes:
        proofs = list(token.proofs)
        dleq = proofs[index].dleq
        assert dleq is not None and dleq.r is not None
        proofs[index] = dataclasses.replace(proofs[index], dleq=Dleq(dleq.s, dleq.e, dleq.r))
        text = serialize_v4(token.with_proofs(proofs), include_dleq=True)
        return orjson.dumps({"cashu_token": text})

    baseline, statuses = await stall_s(node, post_json(node, bad_dleq_at(0), "wallet/create"))
    stalled, hostile = await stall_s(node, post_json(node, bad_dleq_at(999), "wallet/create"))
    assert statuses == hostile == {400}
    assert stalled < baseline + 0.15, (stalled, baseline)


async def test_a_body_of_many_empty_arrays_is_refused_before_it_is_parsed(
    node: NodeHandle,
) -> None:
    """The same attack with no objects at all: millions of empty arrays."""
    empties = b'{"model": "test-model", "messages": [], "x": [' + b"[]," * 3_000_000 + b"[]]}"
    one = orjson.dumps({"model": "test-model", "messages": [{"role": "user", "content": "x"}]})
    baseline, statuses = await stall_s(node, post_json(node, one))
    stalled, hostile = await stall_s(node, post_json(node, empties))
    assert statuses == {402}
    assert hostile == {400}
    assert stalled < baseline + 0.4, (stalled, baseline)


@pytest.mark.parametrize(
    "parts",
    [
        b'{ "role": "user", "content": [{ "type": "text", "text": ""}]},' * 150_000,  # spaced
        b'{"role": "user", "content": "x"},' + b"[0]," * 2_000_000,  # arrays of one number
    ],
    ids=["spaced-objects", "arrays-of-one"],
)
async def test_a_body_of_many_containers_in_any_spelling_is_refused_before_it_is_parsed(
    node: NodeHandle, parts: bytes
) -> None:
    """The same attack spelled past a count of `{"` and `[]`: a space after each `{`, or
    arrays that are not empty. Before, each answered 402 after 3-4 s of event loop."""
    hostile_body = (
        b'{"model": "test-model", "messages": [' + parts + b'{"role": "user", "content": "x"}]}'
    )
    one = orjson.dumps(
        {"model": "test-model", "messages": [{"role": "user", "content": "x" * len(hostile_body)}]}
    )
    assert len(hostile_body) < BODY_BYTES
    baseline, statuses = await stall_s(node, post_json(node, one))
    stalled, hostile = await stall_s(node, post_json(node, hostile_body))
    assert statuses == {402}
    assert hostile == {400}
    assert stalled < baseline + 0.4, (stalled, baseline)


async def test_a_list_of_fallback_models_costs_no_more_than_one_model(node: NodeHandle) -> None:
    """Attack: the same unpaid 9 MB body naming five models (`models`, the fallbacks). Each
    one was given its own deep copy of the body (JSON out and back in) and its own pass
    over it, and the 402's quote planned every one: five times the work of one model,
    ~1 s of event loop where one model's request took ~0.3 s.

    Expected: the body's shape is read once for all the models it names; a model gets a copy
    of its own only where something would change it (its preset), and the bytes counted for
    its estimate are the client's (which name every model, so never fewer than it sends)."""
    part = {"role": "user", "content": [{"type": "text", "text": "x" * 280}]}
    messages = [part] * 28_000  # 84 000 objects and arrays: under the bound
    fallbacks = ["test-nousage", "test-slow", "test-fail500", "test-fail429"]
    five = orjson.dumps({"model": "test-model", "models": fallbacks, "messages": messages})
    one = orjson.dumps({"model": "test-model", "messages": messages})
    assert len(five) < BODY_BYTES
    baseline, statuses = await stall_s(node, post_json(node, one))
    stalled, hostile = await stall_s(node, post_json(node, five))
    assert statuses == hostile == {402}
    assert stalled < baseline + 0.4, (stalled, baseline)


async def test_fallback_models_on_messages_cost_no_more_than_one_model(mnode: NodeHandle) -> None:
    """The same on /v1/messages, with a cache mark on the last turn (each model's plan walked
    the whole body to keep or drop it): five models named, the body read once for them all."""
    part = {"role": "user", "content": [{"type": "text", "text": "x" * 280}]}
    last = {"type": "text", "text": "y", "cache_control": {"type": "ephemeral"}}
    messages = [part] * 28_000 + [{"role": "user", "content": [last]}]
    fallbacks = ["claude-slow", "claude-cut", "claude-midstream", "claude-haiku-4-5"]
    body = {"model": "claude-mock", "max_tokens": 10, "messages": messages}
    five = orjson.dumps({**body, "models": fallbacks})
    one = orjson.dumps(body)
    assert len(five) < BODY_BYTES
    baseline, statuses = await stall_s(mnode, post_json(mnode, one, "messages"))
    stalled, hostile = await stall_s(mnode, post_json(mnode, five, "messages"))
    assert statuses == hostile == {402}
    assert stalled < baseline + 0.4, (stalled, baseline)
