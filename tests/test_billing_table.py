"""docs/billing.md, row by row: whatever the request's shape, the upstream never bills more than
the node charged. Each row's request is paid three ways — an X-Cashu token of what the node's
402 asks, an sk- key holding half of that, and one holding all of it — against an upstream
that bills the way OpenAI and vLLM document (tests/support/billing_upstream.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.conftest import NodeHandle
from tests.support.audio import wav_clip
from tests.support.billing import pay, quote_sat
from tests.support.mints import MintInfo, RefWallet
from tests.support.pg import BOTH_BACKENDS
from tests.support.servers import ThreadedServer

pytestmark = BOTH_BACKENDS

UNICODE = "Grüße, 世界! ✓ naïve café — 🙂🚀 ∑x² "
IMAGE = "https://img.example/cat.png?tiles=8"  # 8 tiles: the most a 2048x768 image has
PDF = "data:application/pdf;base64,JVBERi0xLjQK"
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city ☀",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@dataclass
class Row:
    path: str
    body: dict[str, Any]


def chat(model: str = "bill-model", content: Any = UNICODE * 20, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def with_images(detail: str, count: int = 2) -> list[dict[str, Any]]:
    image = {"type": "image_url", "image_url": {"url": IMAGE, "detail": detail}}
    return [{"type": "text", "text": "What is in these?"}, *[image] * count]


ROWS = {
    # chat/completions
    "messages": Row("chat/completions", {
        "model": "bill-model", "max_tokens": 200,
        "messages": [{"role": "system", "content": "Be brief ✓"},
                     {"role": "user", "content": UNICODE * 40, "name": "ünïcode"}]}),
    "tools": Row("chat/completions", chat(tools=[TOOL] * 5, tool_choice="auto", response_format={
        "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}})),
    "n": Row("chat/completions", chat(n=5, max_tokens=300)),
    "no-output-limit": Row("chat/completions", chat()),
    "max_completion_tokens": Row("chat/completions",
                                 chat(max_completion_tokens=900, max_tokens=50)),
    "reasoning_effort": Row("chat/completions", chat(reasoning_effort="high")),
    "logprobs": Row("chat/completions", chat(logprobs=True, top_logprobs=20, max_tokens=200)),
    "service_tier-auto": Row("chat/completions", chat(service_tier="auto")),
    "service_tier-flex": Row("chat/completions", chat(service_tier="flex")),
    "stream": Row("chat/completions", chat(stream=True, n=2, max_tokens=300)),
    "image_url-high": Row("chat/completions", chat("bill-vision-mini", with_images("high"))),
    "image_url-auto": Row("chat/completions", chat("bill-vision-mini", with_images("auto"))),
    "image_url-low": Row("chat/completions", chat("bill-vision-mini", with_images("low", 9))),
    "file": Row("chat/completions", chat(content=[
        {"type": "text", "text": "Summarise"},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": PDF}}])),
    "search-model": Row("chat/completions", chat("bill-search", max_tokens=100)),
    "small-context": Row("chat/completions", chat("bill-small-context", "1 " * 3000)),
    "long-context-tier": Row("chat/completions", chat("gemini-2.5-pro", "." * 210_000,
                                                      max_tokens=100)),
    # completions
    "prompt-list": Row("completions", {"model": "bill-model", "prompt": ["Say hi ✓"] * 50,
                                       "max_tokens": 100}),
    "best_of": Row("completions", {"model": "bill-model", "prompt": ["a", "b"], "n": 2,
                                   "best_of": 4, "max_tokens": 100}),
    "prompt-token-ids": Row("completions", {"model": "bill-model", "prompt": [[1, 2, 3]] * 20,
                                            "max_tokens": 50}),
    "prompt-ids-one": Row("completions", {"model": "bill-model", "prompt": [7] * 300}),
    "prompt-stream": Row("completions", {"model": "bill-model", "prompt": ["x"] * 10,
                                         "stream": True, "max_tokens": 80}),
    "suffix-echo": Row("completions", {"model": "bill-model", "prompt": "def f(",
                                       "suffix": "return 1 ✓", "echo": True}),
    # responses
    "input": Row("responses", {"model": "bill-model", "input": UNICODE * 30,
                               "instructions": "Réponds en français", "max_output_tokens": 300}),
    "input-items": Row("responses", {"model": "bill-model", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": UNICODE}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": UNICODE * 5}],
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}]}),
    "input_image": Row("responses", {"model": "bill-vision-mini", "input": [{"role": "user",
        "content": [{"type": "input_image", "image_url": IMAGE, "detail": "high"}] * 2}]}),
    "input_file": Row("responses", {"model": "bill-model", "input": [{"role": "user", "content": [
        {"type": "input_file", "filename": "a.pdf", "file_data": PDF}]}]}),
    "responses-n": Row("responses", {"model": "bill-model", "input": "hi", "n": 3,
                                     "max_output_tokens": 200}),
    "responses-stream": Row("responses", {"model": "bill-model", "input": UNICODE * 10,
                                          "stream": True}),
    # embeddings, images
    "embeddings": Row("embeddings", {"model": "bill-model", "input": [UNICODE] * 30}),
    "embeddings-multimodal": Row("embeddings", {"model": "bill-vision-mini", "input": [
        {"image_url": IMAGE}, {"text": "a cat"}]}),
    "embeddings-token-ids": Row("embeddings", {"model": "bill-model", "input": [[1, 2, 3]] * 30}),
    "images-n": Row("images/generations", {"model": "bill-image", "prompt": "a cat", "n": 3}),
    # audio
    "transcription-prompt": Row("audio/transcriptions", {"model": "bill-transcribe",
                                "file": wav_clip(4), "prompt": UNICODE * 200}),
    "transcription-minutes": Row("audio/transcriptions", {"model": "bill-whisper",
                                 "file": wav_clip(61), "language": "en"}),
}  # fmt: skip


@pytest.mark.parametrize("name", list(ROWS))
async def test_the_upstream_never_bills_more_than_the_node_charged(
    name: str,
    billing_node: Callable[..., NodeHandle],
    billing_upstream: ThreadedServer,
    mint: MintInfo,
    ref_wallet: RefWallet,
) -> None:
    row = ROWS[name]
    node, mock = billing_node(), billing_upstream.mock
    body = dict(row.body)
    sat = await quote_sat(node, row.path, body)
    assert sat > 0, "an unpaid request is answered with a 402 asking for a token"
    payers = [
        {"token": await ref_wallet.token(mint.url, sat)},
        {"key": node.new_key(sat * 1000 // 2)},
        {"key": node.new_key(sat * 1000)},
    ]
    served = 0
    for payer in payers:
        outcome = await pay(node, mock, row.path, body, **payer)
        assert outcome.charged_msat >= outcome.billed_msat, (payer, outcome.bills)
        if outcome.status == 200:
            served += 1
            assert len(outcome.bills) == 1
        else:  # too little to reserve for: refused before anything went upstream
            assert outcome.status == 402 and outcome.bills == [] and outcome.charged_msat == 0
    assert served >= 2, "the token and the key with the whole quote are served"
    node.assert_clean()


async def test_a_long_prompt_is_quoted_and_listed_at_its_tier(
    billing_node: Callable[..., NodeHandle],
) -> None:
    """gemini-2.5-pro: $1.25/$10 per Mtok up to 200 000 prompt tokens, $2.50/$15 for all of a
    longer prompt's tokens (genai-prices); $100 000/BTC makes $1 per Mtok 1 msat a token."""
    node = billing_node()
    async with aiohttp.ClientSession() as session:
        costs = []
        for prompt in (200_000, 200_001):
            query = {"model": "gemini-2.5-pro", "input_tokens": prompt, "output_tokens": 1000}
            async with session.get(f"{node.url}/v1/estimate", params=query) as resp:
                costs.append((await resp.json())["cost_msat"])
        async with session.get(f"{node.url}/v1/models/gemini-2.5-pro") as resp:
            pricing = (await resp.json())["pricing"]
    assert costs == [250_000 + 10_000, 500_003 + 15_000]
    assert pricing["prompt_above_200000"] == 0.0000025


async def test_a_stored_response_is_reserved_up_to_the_context(
    billing_node: Callable[..., NodeHandle], billing_upstream: ThreadedServer
) -> None:
    """previous_response_id: the upstream reads the stored conversation again, which the body
    does not hold. Only the account that was answered with it may name it (node/proxy/stored.py),
    so each key makes its own first; a key left with little can then not afford the context."""
    node, mock = billing_node(), billing_upstream.mock
    served = 0
    for balance in (4_000, 10**6):
        key = node.new_key(balance)
        first = {"model": "bill-model", "input": "Tell a long story", "max_output_tokens": 1000}
        made = await pay(node, mock, "responses", first, key=key)
        assert made.status == 200 and made.charged_msat >= made.billed_msat
        later = {"model": "bill-model", "input": "go on", "max_output_tokens": 500,
                 "previous_response_id": json.loads(made.body)["id"]}  # fmt: skip
        outcome = await pay(node, mock, "responses", later, key=key)
        assert outcome.charged_msat >= outcome.billed_msat, outcome.bills
        served += outcome.status == 200
        assert outcome.status == 200 or outcome.bills == []
    assert served == 1  # the key with 10^6 msat; the other was left ~1900 msat
    node.assert_clean()
