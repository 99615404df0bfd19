"""Adversarial: the upstream bills more than the node charged, for requests the node forwarded.

Rule (issue 20, README "Money rules"): the node never pays an upstream bill out of other
clients' backing; once a request is sent, whatever the upstream bills for it is charged to the
payer (the reservation bounds it). Each test below is a way a client makes the upstream bill
more than the node charges, reproduced against a stand-in upstream that bills as providers
document:

- OpenRouter's streaming docs (https://openrouter.ai/docs/api-reference/streaming, "Stream
  Cancellation"): "For non-streaming requests or unsupported providers [Google, Groq,
  Bedrock, Mistral, ...], the model will continue processing and you will be billed for the
  complete response." Closing the connection does not end the bill.
- Gemini-family OpenAI-compatible endpoints report `completion_tokens` without the thinking
  tokens, which are billed as output (total_tokens holds them; see e.g.
  router-for-me/CLIProxyAPI#5733, Portkey-AI/gateway#1458, LianjiaTech/bella-openapi#68).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.conftest import NodeHandle
from tests.support.billing_upstream import Bill, BillingUpstream
from tests.support.servers import ThreadedServer

BALANCE = 1_000_000
PRICE = {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0, "max_output_tokens": 1000}
MSAT_PER_PROMPT_TOKEN, MSAT_PER_OUTPUT_TOKEN = 1, 2  # $1/$2 per Mtok at $100 000/BTC
PROMPT_TOKENS = 20
HIDDEN_REASONING = 900  # thinking tokens: billed as output, never streamed as text


def bill_msat(prompt: int, completion: int) -> int:
    return prompt * MSAT_PER_PROMPT_TOKEN + completion * MSAT_PER_OUTPUT_TOKEN


def chunk(delta: dict[str, Any]) -> bytes:
    body = {"id": "c", "object": "chat.completion.chunk", "model": "thinker",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}  # fmt: skip
    return b"data: " + orjson.dumps(body) + b"\n\n"


VISION_MINI = 2833 / 85  # gpt-4o-mini bills an image's tiles ~33x (tests/support/billing.py)


class ThinkingUpstream:
    """A model behind an OpenAI-compatible API that reads its prompt, thinks (unseen), then
    writes; it bills as it goes, whether or not the caller still reads.

    A stream: the role chunk once the prompt is read (its tokens counted as the billing
    upstream does: images by their tiles), then `think_s` of thinking (HIDDEN_REASONING tokens,
    for the model "thinker"), then the answer's text a chunk at a time, then the usage
    (reasoning included in completion)."""

    def __init__(self, think_s: float = 0.6, gap_s: float = 0.4) -> None:
        self.think_s, self.gap_s = think_s, gap_s
        self.counter = BillingUpstream(image_multipliers={"vision-mini": VISION_MINI})
        self.billed: list[tuple[int, int]] = []  # (prompt, completion) per request
        self.app = web.Application()
        self.app.add_routes([web.post("/v1/chat/completions", self.chat),
                             web.get("/v1/models", self.models)])  # fmt: skip

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": []})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = str(body["model"])
        prompt = self.counter.messages(body["messages"], model, Bill("chat/completions", model))
        words = ["Hi", " there", "."]
        reasoning = HIDDEN_REASONING if model == "thinker" else 0
        completion = reasoning + len(words)
        self.billed.append((prompt, completion))  # generated whatever happens next
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        try:
            await out.write(chunk({"role": "assistant", "content": ""}))
            await asyncio.sleep(self.think_s)  # the model thinks; nothing is sent meanwhile
            for word in words:
                await out.write(chunk({"content": word}))
                await asyncio.sleep(self.gap_s)
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "completion_tokens_details": {"reasoning_tokens": reasoning},
            }
            final = {"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": usage}
            await out.write(b"data: " + orjson.dumps(final) + b"\n\n")
            await out.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass  # the caller hung up: the tokens above were generated (and billed) anyway
        return out


@pytest.fixture
def thinker() -> Iterator[ThreadedServer]:
    mock = ThinkingUpstream()
    server = ThreadedServer(lambda: mock.app).start()
    server.mock = mock
    yield server
    server.stop()


@pytest.fixture
def thinking_node(make_node: Callable[..., NodeHandle], thinker: ThreadedServer) -> NodeHandle:
    return make_node(
        upstreams=[{"name": "thinker", "base_url": f"{thinker.url}/v1", "list_models": False}],
        models=[
            {"id": "thinker", "context_length": 8000, **PRICE},
            {"id": "vision-mini", "context_length": 128_000, **PRICE},
        ],
    )


async def drop_after_first_chunk(node: NodeHandle, key: str, body: dict[str, Any]) -> None:
    """Stream `body`, hang up once the first chunk is in, and wait until the node settled."""
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession() as http:
        resp = await http.post(f"{node.url}/v1/chat/completions", json=body, headers=headers)
        assert resp.status == 200
        await resp.content.readuntil(b"\n\n")
        resp.close()
    await asyncio.sleep(2.5)  # the upstream's thinking and the chunks after it
    await asyncio.to_thread(settled, node)


def settled(node: NodeHandle, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while node.ledger.open_reservations() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert node.ledger.open_reservations() == 0


async def test_a_stream_dropped_after_its_first_chunk_is_charged_what_the_upstream_billed(
    thinking_node: NodeHandle, thinker: ThreadedServer
) -> None:
    """Attack: stream a reasoning model and hang up as soon as the first chunk arrives. The
    upstream thinks HIDDEN_REASONING tokens while the node is still connected (nothing of it is
    streamed), then writes; the node notices the client is gone at its next write and charges
    its estimate of the *text it relayed* (a token or two), never reading the usage that was
    on its way. With an X-Cashu token the rest of the reservation comes back as change.

    Impact: ~1800 msat billed for ~25 msat charged per request (72x), repeatable at will.

    Expected: a client that goes away mid-stream is charged what the upstream bills: the node
    keeps reading the upstream's stream (without relaying it) until its usage, and charges that
    (bounded by the reservation), or charges the reservation when no usage comes.
    """
    node = thinking_node
    key = node.new_key(BALANCE)
    body = {"model": "thinker", "stream": True, "max_tokens": 1000,
            "messages": [{"role": "user", "content": "think hard, then say hi"}]}  # fmt: skip
    await drop_after_first_chunk(node, key, body)
    prompt, completion = thinker.mock.billed[-1]
    charged = BALANCE - node.balance(key)
    assert charged >= bill_msat(prompt, completion), (charged, bill_msat(prompt, completion))


async def test_an_image_prompt_dropped_mid_stream_is_charged_what_the_upstream_billed(
    thinking_node: NodeHandle, thinker: ThreadedServer
) -> None:
    """Attack: stream a request with a high-detail image (~80 bytes of URL, 1445 tokens, x33 on
    gpt-4o-mini: ~48 000 prompt tokens) and hang up after the first chunk. The first chunk
    means the upstream has read (and bills) the whole prompt. Without its usage the node
    charges `plan.prompt_tokens`, the prompt's *byte estimate* (bytes/4 + 16), although the
    reservation bounded this prompt by the model's context precisely because its bytes do not
    (docs/billing.md, images row). Same estimate for an upstream stream that breaks, a plain
    answer without usage, and the floor charged on a timeout or after a crash.

    Impact: ~48 000 msat billed for ~60 msat charged, per request (X-Cashu gets the rest back).

    Expected: when usage is missing, a prompt whose tokens the bytes do not bound is charged at
    its bound (the reservation's prompt), not its byte estimate (node/metering.py `Plan`
    prompt_tokens / `Meter.cost`, and the floor).
    """
    node = thinking_node
    key = node.new_key(BALANCE)
    image = {
        "type": "image_url",
        "image_url": {"url": "https://example.com/cat.png", "detail": "high"},
    }
    body = {"model": "vision-mini", "stream": True, "max_tokens": 100,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "what is it?"},
                                                      image]}]}  # fmt: skip
    await drop_after_first_chunk(node, key, body)
    prompt, completion = thinker.mock.billed[-1]
    assert prompt > 40_000
    charged = BALANCE - node.balance(key)
    assert charged >= bill_msat(prompt, completion), (charged, bill_msat(prompt, completion))


async def test_a_plain_request_that_times_out_is_charged_what_the_upstream_bills(
    node: NodeHandle, upstream: ThreadedServer
) -> None:
    """Attack: ask a slow model (or a long answer: 128k output tokens at high reasoning effort
    take many minutes) for a plain, non-stream answer whose generation outlasts the upstream's
    `first_byte_timeout_s` (300 s by default; 1 s on the test's "impatient" upstream). The node
    gives up, answers 504 and charges the floor: the prompt's cost. The upstream keeps working
    and bills the complete response (OpenRouter's docs: "For non-streaming requests ... the
    model will continue processing and you will be billed for the complete response"). A
    failover after such a timeout does the same once per extra upstream.

    Impact: the whole output (here 900 tokens = 1800 msat) for the prompt's ~100 msat.

    Expected: a timeout after the request was sent is charged what the answer may cost: the
    reservation (its output included), as an oversized answer already is; a model with several
    upstreams reserves that much per extra upstream before failing over (or fails over only
    on errors that the upstream does not bill).
    """
    key = node.new_key(BALANCE)
    body = {"model": "test-hang", "max_tokens": 1000, "mock": {"completion_tokens": 900},
            "messages": [{"role": "user", "content": "write at length"}]}  # fmt: skip
    raw = orjson.dumps(body)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{node.url}/v1/chat/completions", data=raw, headers=headers) as resp,
    ):
        assert resp.status == 504
    await asyncio.sleep(2.5)  # the mock answers (and bills) 3 s after it got the request
    sent = upstream.mock.received[-1]["body"]
    assert sent["model"] == "test-hang"
    billed_output = min(900, sent["max_tokens"])  # what the upstream wrote for it
    charged = BALANCE - node.balance(key)  # the prompt aside: the output alone is what is missed
    assert charged >= bill_msat(0, billed_output), (charged, bill_msat(0, billed_output))


def test_reasoning_reported_beside_completion_tokens_is_charged(node: NodeHandle) -> None:
    """Attack: pick a thinking model whose upstream reports usage the way Gemini's OpenAI-
    compatible endpoints do: `completion_tokens` is the visible answer only, the thoughts are in
    `completion_tokens_details.reasoning_tokens` and in `total_tokens`. The node reads
    completion_tokens and caps reasoning_tokens at it, so the thinking is free.

    Impact: 900 thinking tokens (1800 msat) charged as 5 (10 msat), on every request.

    Expected: completion is at least max(completion_tokens, reasoning_tokens,
    total_tokens - prompt_tokens) (and the prompt at least total - completion), bounded by
    the reservation as usual (node/pricing.py Usage.from_openai).
    """
    from tests.test_spine import client

    key = node.new_key(BALANCE)
    usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": 5,
             "total_tokens": PROMPT_TOKENS + 5 + HIDDEN_REASONING,
             "completion_tokens_details": {"reasoning_tokens": HIDDEN_REASONING}}  # fmt: skip
    client(node, key).chat.completions.create(
        model="test-model",
        messages=[{"role": "user", "content": "think, then answer in one word"}],
        max_tokens=1000,
        extra_body={"mock": {"report_usage": usage, "completion_tokens": 5}},
    )
    charged = BALANCE - node.balance(key)
    assert charged >= bill_msat(PROMPT_TOKENS, 5 + HIDDEN_REASONING), charged
    node.assert_clean()
