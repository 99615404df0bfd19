"""OpenAI's quickstart streaming loop, through the official Python SDK, on paid streams.

    for chunk in stream:
        print(chunk.choices[0].delta.content or "", end="")

A client that did not ask for `stream_options.include_usage` gets no chunk without choices:
the last one keeps `choices[0]` (an empty delta) and carries the cost and any X-Cashu change.
One that asked gets OpenAI's usage chunk (`choices: []`), as OpenAI sends it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from tests.conftest import NodeHandle
from tests.interop.flows import change_due
from tests.support.cashu_ts import CashuTs
from tests.support.mints import MintInfo

HELLO: dict[str, Any] = {
    "model": "test-model",
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 10,
}


def quickstart(node: NodeHandle, api_key: str, headers: dict[str, str], **extra: Any) -> Any:
    """The quickstart loop, verbatim but for the text it gathers; the last chunk."""
    client = openai.OpenAI(base_url=f"{node.url}/v1", api_key=api_key, max_retries=0)
    with client:
        stream = client.chat.completions.create(
            **HELLO, stream=True, extra_headers=headers, **extra
        )
        text, last = "", None
        for chunk in stream:
            if extra.get("stream_options", {}).get("include_usage") and not chunk.choices:
                last = chunk  # asked for: OpenAI's usage chunk, choices empty
                continue
            text += chunk.choices[0].delta.content or ""
            last = chunk
        assert text
        return last


@pytest.mark.parametrize("asked", [False, True], ids=["plain", "include_usage"])
async def test_quickstart_loop_on_a_key_paid_stream(wallet_node: NodeHandle, asked: bool) -> None:
    key = wallet_node.new_key(100_000)
    options = {"stream_options": {"include_usage": True}} if asked else {}
    last = await asyncio.to_thread(quickstart, wallet_node, key, {}, **options)
    cost = last.usage.model_extra["cost_msat"]
    assert (last.choices == []) is asked
    assert wallet_node.balance(key) == 100_000 - cost
    wallet_node.assert_clean()


@pytest.mark.parametrize("asked", [False, True], ids=["plain", "include_usage"])
async def test_quickstart_loop_on_an_x_cashu_stream(
    wallet_node: NodeHandle, cashu_ts: CashuTs, mint: MintInfo, asked: bool
) -> None:
    token = await cashu_ts.token(mint.url, 30)
    options = {"stream_options": {"include_usage": True}} if asked else {}
    last = await asyncio.to_thread(quickstart, wallet_node, "unused", {"X-Cashu": token}, **options)
    cost = last.usage.model_extra["cost_msat"]
    change = last.model_extra["x_cashu"]
    assert await cashu_ts.receive(mint.url, change, require_dleq=True) == change_due(30, cost)
    assert wallet_node.balance(token) == (30_000 - cost) % 1000
    wallet_node.assert_clean()
