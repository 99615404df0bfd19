"""The idle limit between two chunks of a stream is a limit on each pause, not on the stream.

One timer serves a whole stream (node/proxy/upstream.py, `Chunks`): when it fires it must look
at the pause under way, not at how long the stream has run. A stream longer than the limit whose
pauses are all shorter ends normally and is charged from its usage; one that pauses longer than
the limit ends with an error event and is charged what was produced.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.conftest import NodeHandle
from tests.support.servers import ThreadedServer
from tests.test_spine import PAD, client, hello
from tests.test_upstream_edges import chunk, raw, raw_node, script, usage_chunk

__all__ = ["raw", "raw_node"]  # fixtures (around `RawUpstream`) used by name below

COST = 2000  # 1000 prompt and 500 completion tokens at the PRICE of test_upstream_edges
START = 1_000_000
IDLE_S = 0.3  # the upstream writes a chunk every 0.05 s (RawUpstream)


def wire(event: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def test_a_stream_longer_than_the_idle_limit_with_short_pauses_ends_and_is_charged(
    raw_node: Callable[..., NodeHandle], raw: ThreadedServer
) -> None:
    model = "idle-long-stream"
    words = [wire(chunk(model, {"content": "tok "})) for _ in range(24)]  # ~1.2 s in all
    script(raw, model, [*words, wire(usage_chunk(model, 1000, 500)), b"data: [DONE]\n\n"])
    node = raw_node({"id": model, "upstream": "raw"}, idle_timeout_s=IDLE_S)
    key = node.new_key(START)
    got = list(
        client(node, key).chat.completions.create(**hello(model), stream=True, extra_body=PAD)
    )
    assert "".join(c.choices[0].delta.content or "" for c in got if c.choices) == "tok " * 24
    usage = got[-1].usage
    assert usage is not None and usage.model_extra is not None
    assert usage.model_extra["cost_msat"] == COST
    assert node.balance(key) == START - COST
    node.assert_clean()


def test_a_pause_past_the_idle_limit_ends_the_stream_and_charges_what_was_produced(
    raw_node: Callable[..., NodeHandle], raw: ThreadedServer
) -> None:
    model = "idle-stalled-stream"
    words = [wire(chunk(model, {"content": "tok "})) for _ in range(10)]
    stall = [b""] * 10  # ten empty writes: a pause of ~0.5 s with nothing sent
    script(raw, model, [*words, *stall, wire(usage_chunk(model, 1000, 500)), b"data: [DONE]\n\n"])
    node = raw_node({"id": model, "upstream": "raw"}, idle_timeout_s=IDLE_S)
    key = node.new_key(START)
    stream = client(node, key).chat.completions.create(**hello(model), stream=True, extra_body=PAD)
    with pytest.raises(openai.APIError):
        list(stream)  # the error event ends the stream
    assert START - COST < node.balance(key) < START  # what was produced, not the usage's
    node.assert_clean()
