"""The end of an upstream's stream: a last event without its blank line still counts.

Strict SSE drops an event the stream ends inside of, but many upstreams close right after
`data: {...usage...}\\n` (or without any newline): the node must relay that event and charge
from its usage, not an estimate. An unterminated `data: [DONE]` is still the end, sent once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from node.proxy.sse import SseReader
from tests.conftest import NodeHandle
from tests.support.httpfetch import fetch
from tests.support.servers import ThreadedServer
from tests.test_spine import PAD, client, hello
from tests.test_upstream_edges import chunk, raw, raw_node, script, usage_chunk

__all__ = ["raw", "raw_node"]  # fixtures (around `RawUpstream`) used by name below

COST = 2000  # 1000 prompt and 500 completion tokens at the PRICE of test_upstream_edges
START = 1_000_000


def wire(event: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(event).encode()


def stream_chunks(model: str, last: bytes, one_chunk: bool) -> list[bytes]:
    """Two content events, then `last` as the stream's final bytes."""
    events = [wire(chunk(model, {"content": "Hel"})), wire(chunk(model, {"content": "lo"}))]
    chunks = [e + b"\n\n" for e in events] + [last]
    return [b"".join(chunks)] if one_chunk else chunks


def usage_on_finish(model: str) -> dict[str, Any]:
    last = chunk(model, {}) | {"usage": usage_chunk(model, 1000, 500)["usage"]}
    last["choices"][0]["finish_reason"] = "stop"
    return last


@pytest.mark.parametrize("one_chunk", [False, True], ids=["own-chunk", "all-in-first-chunk"])
@pytest.mark.parametrize("ending", [b"\n", b""], ids=["newline", "no-newline"])
@pytest.mark.parametrize("carrier", ["usage-event", "usage-on-finish-chunk"])
def test_unterminated_last_event_reaches_the_client_and_is_charged_from(
    raw_node: Callable[..., NodeHandle],
    raw: ThreadedServer,
    carrier: str,
    ending: bytes,
    one_chunk: bool,
) -> None:
    model = f"end-{carrier}-{len(ending)}-{one_chunk}"
    last = usage_chunk(model, 1000, 500) if carrier == "usage-event" else usage_on_finish(model)
    script(raw, model, stream_chunks(model, wire(last) + ending, one_chunk))
    node = raw_node({"id": model, "upstream": "raw"})
    key = node.new_key(START)
    got = list(
        client(node, key).chat.completions.create(**hello(model), stream=True, extra_body=PAD)
    )
    assert "".join(c.choices[0].delta.content or "" for c in got if c.choices) == "Hello"
    if carrier == "usage-on-finish-chunk":  # relayed as it came, finish reason and all
        assert [c.choices[0].finish_reason for c in got if c.choices][-1] == "stop"
    usage = got[-1].usage
    assert usage is not None and usage.model_extra is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (1000, 500)  # the upstream's
    assert usage.model_extra["cost_msat"] == COST and "estimated" not in usage.model_extra
    assert node.balance(key) == START - COST
    node.assert_clean()


@pytest.mark.parametrize("ending", [b"\n", b""], ids=["newline", "no-newline"])
def test_unterminated_done_ends_the_stream_once(
    raw_node: Callable[..., NodeHandle], raw: ThreadedServer, ending: bytes
) -> None:
    model = f"done-{len(ending)}"
    usage = wire(usage_chunk(model, 1000, 500)) + b"\n\n"
    script(raw, model, stream_chunks(model, usage + b"data: [DONE]" + ending, one_chunk=False))
    node = raw_node({"id": model, "upstream": "raw"})
    key = node.new_key(START)
    reply = fetch(
        f"{node.url}/v1/chat/completions",
        "POST",
        {"Authorization": f"Bearer {key}"},
        {**hello(model), "stream": True, **PAD},
    )
    assert reply.status == 200
    events = [e for e in reply.body.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]" and reply.body.endswith(b"\n\n")
    assert reply.body.count(b"[DONE]") == 1  # the node's own, not the upstream's as well
    final = json.loads(events[-2].removeprefix(b"data: "))
    assert final["usage"]["prompt_tokens"] == 1000 and final["usage"]["cost_msat"] == COST
    assert "estimated" not in final["usage"]
    assert node.balance(key) == START - COST
    node.assert_clean()


def test_last_event_cut_short_is_dropped_and_an_estimate_charged(
    raw_node: Callable[..., NodeHandle], raw: ThreadedServer
) -> None:
    """Half an event is not whole: the client must not get broken JSON, and without usage
    the node charges its estimate (as before)."""
    model = "cut-short"
    cut = wire(usage_chunk(model, 1000, 500))[:-20]
    script(raw, model, stream_chunks(model, cut, one_chunk=False))
    node = raw_node({"id": model, "upstream": "raw"})
    key = node.new_key(START)
    got = list(client(node, key).chat.completions.create(**hello(model), stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in got if c.choices) == "Hello"
    usage = got[-1].usage
    assert usage is not None and usage.model_extra is not None
    assert usage.model_extra["estimated"] is True
    cost = usage.model_extra["cost_msat"]
    assert cost > 0 and node.balance(key) == START - cost
    node.assert_clean()


def test_reader_hands_over_only_a_whole_last_event() -> None:
    """The reader itself: a whole last event is handed over (usage held for the node's end,
    content passed on), `[DONE]` is noted as the end and never passed on, the rest dropped."""
    content, usage = wire(chunk("m", {"content": "Hi"})), wire(usage_chunk("m", 1000, 500))
    for tail, out, held in [
        (content, [content + b"\n\n"], False),
        (usage + b"\n", [], True),
        (b"data: [DONE]", [], False),
        (usage[:-20], [], False),
        (b": keep-alive\n", [], False),
    ]:
        reader = SseReader()
        assert reader.feed(tail) == []
        assert reader.close() == out
        assert (reader.usage_event is not None) == held
        assert reader.done == (tail == b"data: [DONE]")
        assert reader.close() == []  # nothing handed over twice
