"""What a request is charged when the upstream's answer is odd: usage in strange shapes, more
than was asked for, malformed parts, and a stream cut short by the node's own shutdown."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from node.app import create_app
from node.pricing.prices import Price, Pricer, Usage
from node.settings import load_settings
from tests.conftest import NodeHandle, node_config
from tests.support.audio import wav_clip
from tests.support.servers import ThreadedServer
from tests.test_spine import EXACT, PAD, client, hello

BALANCE = 1_000_000
OUTPUT_500 = 1000  # 500 output tokens at $2/Mtok; test-output-only's prompt is free


def spent(node: NodeHandle, key: str) -> int:
    return BALANCE - node.balance(key)


def reporting(usage: Any, **mock: Any) -> dict[str, Any]:
    return {"mock": {"completion_tokens": 500, "report_usage": usage, **PAD, **mock}}


# An upstream whose usage gives the output count as something other than a count must not
# make the answer free: the count is read when it is a number, else estimated from the text.
ODD_COMPLETIONS = [
    pytest.param({"prompt_tokens": 9, "completion_tokens": "500"}, id="string"),
    pytest.param({"prompt_tokens": 9, "completion_tokens": -500}, id="negative"),
    pytest.param({"prompt_tokens": 9, "completion_tokens": None}, id="null"),
    pytest.param({"prompt_tokens": 9}, id="missing"),
    pytest.param({"prompt_tokens": 9, "completion_tokens": 500.0}, id="float"),
    pytest.param({"input_tokens": 9, "output_tokens": 499.2}, id="fraction"),
]


@pytest.mark.parametrize("usage", ODD_COMPLETIONS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_odd_completion_count_in_usage_is_still_charged(
    node: NodeHandle, usage: dict[str, Any], stream: bool
) -> None:
    key = node.new_key(BALANCE)
    request, reported = hello("test-output-only", max_tokens=500), reporting(usage)
    api = client(node, key).chat.completions
    if stream:
        assert len(list(api.create(**request, stream=True, extra_body=reported))) > 500
    else:
        api.create(**request, extra_body=reported)
    assert spent(node, key) == OUTPUT_500
    node.assert_clean()


def test_completions_best_of_is_charged_for_every_candidate(node: NodeHandle) -> None:
    # best_of makes the upstream write that many answers (and bill them) to return n.
    key = node.new_key(BALANCE)
    usage = {"prompt_tokens": 1000, "completion_tokens": 30}
    client(node, key).completions.create(
        model="test-model", prompt="once", max_tokens=10, best_of=3, extra_body=reporting(usage)
    )
    assert spent(node, key) == 1000 + 60
    node.assert_clean()


@pytest.mark.parametrize(
    ("limits", "sent"),
    [
        pytest.param({"max_tokens": 900, "max_completion_tokens": 900}, 50, id="both-capped"),
        pytest.param({"max_completion_tokens": 900, "max_tokens": 5}, 5, id="smaller-wins"),
        pytest.param({"max_completion_tokens": None, "max_tokens": 900}, 50, id="one-null"),
    ],
)
def test_every_output_limit_sent_upstream_is_within_the_reservation(
    node: NodeHandle, upstream: ThreadedServer, limits: dict[str, int], sent: int
) -> None:
    # An upstream may read either field (many OpenAI-compatible servers know only max_tokens):
    # neither may let it write more than the 50 tokens the balance pays for.
    key = node.new_key(100)
    client(node, key).chat.completions.create(**hello("test-output-only"), extra_body=limits)
    seen = upstream.mock.received[-1]["body"]
    assert (seen["max_tokens"], seen["max_completion_tokens"]) == (sent, sent)
    node.assert_clean()


@pytest.mark.parametrize(
    "merge",
    [
        pytest.param({"choices": [{"index": 0, "message": {"tool_calls": 5}}]}, id="tool_calls"),
        pytest.param({"output": 5}, id="output"),
        pytest.param({"output": [{"type": "message", "content": 3}]}, id="content"),
    ],
)
def test_malformed_answer_parts_are_no_server_error(
    node: NodeHandle, merge: dict[str, Any]
) -> None:
    key = node.new_key(BALANCE)
    extra = {"mock": {**EXACT["mock"], "merge": merge}}
    if "output" in merge:
        answer: Any = client(node, key).responses.create(
            model="test-model", input="hi", max_output_tokens=500, extra_body=extra
        )
    else:
        answer = client(node, key).chat.completions.with_raw_response.create(
            **hello(max_tokens=500), extra_body=extra
        )
    assert answer is not None
    assert spent(node, key) == 2000
    node.assert_clean()


def test_malformed_stream_chunk_neither_breaks_the_stream_nor_its_charge(
    node: NodeHandle,
) -> None:
    key = node.new_key(BALANCE)
    odd = {"choices": [{"index": 0, "delta": {"tool_calls": 5}}]}
    extra = {"mock": {**EXACT["mock"], "extra_chunk": odd}}
    chunks = list(
        client(node, key).chat.completions.create(
            **hello(max_tokens=500), stream=True, extra_body=extra
        )
    )
    assert chunks[-1].usage is not None
    assert spent(node, key) == 2000
    node.assert_clean()


@pytest.fixture
def unit_node(make_node: Callable[..., NodeHandle]) -> NodeHandle:
    return make_node(
        models=[
            {"id": "test-image", "image_output_usd": 0.04},  # 40 000 msat an image
            {"id": "whisper-minute", "audio_usd_per_minute": 0.006},  # 100 msat a second
        ]
    )


def test_more_images_than_asked_are_not_charged_beyond_the_reservation(
    unit_node: NodeHandle,
) -> None:
    key = unit_node.new_key(BALANCE)
    client(unit_node, key).images.generate(
        model="test-image", prompt="a nut", n=1, extra_body={"mock": {"images": 20}}
    )
    assert spent(unit_node, key) == 40_000
    unit_node.assert_clean()


def transcribe(node: NodeHandle, key: str, clip: bytes, **fields: str) -> None:
    client(node, key).audio.transcriptions.create(
        model="whisper-minute", file=("clip.wav", clip, "audio/wav"), extra_body=fields
    )


def test_absurd_audio_seconds_do_not_drain_the_account(unit_node: NodeHandle) -> None:
    key = unit_node.new_key(BALANCE)
    transcribe(unit_node, key, wav_clip(3), mock_seconds="1e9")
    assert spent(unit_node, key) == 300
    unit_node.assert_clean()


def test_audio_billed_in_whole_seconds_is_reserved_and_charged_so(unit_node: NodeHandle) -> None:
    # Upstreams report whole seconds, rounded up: 1.5 s is billed as 2 s.
    key = unit_node.new_key(BALANCE)
    transcribe(unit_node, key, wav_clip(1.5))
    assert spent(unit_node, key) == 200
    key = unit_node.new_key(200)  # exactly what the upstream will bill is enough
    transcribe(unit_node, key, wav_clip(1.5))
    assert unit_node.balance(key) == 0
    unit_node.assert_clean()


@pytest.fixture
def own_node(upstream: ThreadedServer, tmp_path: Path) -> Iterator[NodeHandle]:
    """A node this test stops itself (on SQLite), with a slow model whose prompt is free."""
    config = node_config(upstream.url, tmp_path)
    price = {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 2.0, "max_output_tokens": 1000}
    config["models"].append({"id": "slow-output-only", "upstream_model": "test-slow", **price})
    settings = load_settings(None, **config)
    handle = NodeHandle(settings, ThreadedServer(lambda: create_app(settings)).start())
    yield handle
    handle.db.close()


def test_stream_cut_short_by_shutdown_is_charged_for_what_was_sent(own_node: NodeHandle) -> None:
    key = own_node.new_key(BALANCE)
    stream = client(own_node, key).chat.completions.create(
        **hello("slow-output-only", max_tokens=50), stream=True, extra_body={"mock": {"pause_s": 5}}
    )
    assert next(iter(stream)).choices[0].delta.content == "tok "
    stopper = threading.Thread(target=own_node.server.stop)
    stopper.start()  # the node shuts down while the upstream pauses mid-answer
    with pytest.raises(Exception):  # noqa: B017 (the SDK's or its HTTP library's)
        list(stream)
    stopper.join(timeout=30)
    assert spent(own_node, key) == 2  # the one token that reached the client, at $2/Mtok
    own_node.assert_clean()


def test_pricing_one_off_prices_does_not_keep_them_all() -> None:
    # Each image or audio request prices a Price of its own; at a fixed BTC rate none of them
    # may stay in the pricer's memo for the life of the process.
    pricer = Pricer(lambda: Fraction(100_000))
    refs = []
    for i in range(10_000):
        price = Price(Fraction(0), Fraction(0), request=Fraction(i, 10**6))
        assert pricer.cost_msat(price, Usage()) == i  # $i per 10^6 = i msat
        refs.append(weakref.ref(price))
    del price
    gc.collect()
    assert sum(ref() is not None for ref in refs) <= 4096
