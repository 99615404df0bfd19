"""Every endpoint through the official OpenAI SDK, charged as priced; presets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.conftest import NodeHandle
from tests.support.audio import wav_clip
from tests.support.sdk import extra
from tests.support.servers import ThreadedServer
from tests.test_spine import EXACT, PAD, client, hello

PRICE = {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0, "max_output_tokens": 1000}
BALANCE = 1_000_000


@pytest.fixture
def api_node(make_node: Callable[..., NodeHandle], upstream: ThreadedServer) -> NodeHandle:
    return make_node(
        models=[
            {"id": "test-model", **PRICE},
            {"id": "test-image", "image_output_usd": 0.04},
            {"id": "whisper-minute", "audio_usd_per_minute": 0.006},
            {"id": "whisper-tokens", **PRICE},
        ],
        presets=[
            {
                "name": "pirate",
                "model": "test-model",
                "system_prompt": "Talk like a pirate.",
                "params": {"temperature": 0.3},
                "description": "Arr",
            }
        ],
    )


def last_body(upstream: ThreadedServer) -> dict[str, Any]:
    body: dict[str, Any] = upstream.mock.received[-1]["body"]
    return body


def spent(node: NodeHandle, key: str) -> int:
    return BALANCE - node.balance(key)


def test_completions(api_node: NodeHandle) -> None:
    key = api_node.new_key(BALANCE)
    answer = client(api_node, key).completions.create(
        model="test-model", prompt="once upon", max_tokens=500, extra_body=EXACT
    )
    assert answer.choices[0].text == "tok " * 500
    assert spent(api_node, key) == 2000
    api_node.assert_clean()


def test_embeddings(api_node: NodeHandle) -> None:
    key = api_node.new_key(BALANCE)
    answer = client(api_node, key).embeddings.create(
        model="test-model", input=["a", "b"], extra_body={"mock": {"prompt_tokens": 1000, **PAD}}
    )
    assert [d.embedding for d in answer.data] == [[0.25, -0.5, 0.75]] * 2
    assert answer.usage.model_extra and answer.usage.model_extra["cost_msat"] == 1000
    assert spent(api_node, key) == 1000  # 1000 tokens at $1/Mtok
    api_node.assert_clean()


def test_responses_plain_and_streamed(api_node: NodeHandle, upstream: ThreadedServer) -> None:
    key = api_node.new_key(BALANCE)
    api = client(api_node, key)
    answer = api.responses.create(
        model="test-model", input="hi", max_output_tokens=500, extra_body=EXACT
    )
    assert answer.output_text == "tok " * 500
    assert answer.usage is not None and answer.usage.input_tokens == 1000
    assert answer.usage.model_extra and answer.usage.model_extra["cost_msat"] == 2000
    assert spent(api_node, key) == 2000
    events = list(
        api.responses.create(
            model="test-model", input="hi", max_output_tokens=500, stream=True, extra_body=EXACT
        )
    )
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "tok " * 500
    done = events[-1]
    assert done.type == "response.completed"
    assert done.response.usage is not None and done.response.usage.model_extra
    assert done.response.usage.model_extra["cost_msat"] == 2000
    assert spent(api_node, key) == 4000
    assert "stream_options" not in last_body(upstream)
    api_node.assert_clean()


def test_images_are_charged_per_image(api_node: NodeHandle) -> None:
    key = api_node.new_key(BALANCE)
    answer = client(api_node, key).images.generate(model="test-image", prompt="a nut", n=2)
    assert answer.data is not None and len(answer.data) == 2
    assert spent(api_node, key) == 80_000  # 2 × $0.04 at $100 000/BTC
    with pytest.raises(openai.BadRequestError):
        client(api_node, key).images.generate(model="test-model", prompt="no image price")
    with pytest.raises(openai.BadRequestError):  # priced per image only: never chat for free
        client(api_node, key).chat.completions.create(**hello("test-image"))
    api_node.assert_clean()


def test_transcription_priced_per_minute(api_node: NodeHandle, upstream: ThreadedServer) -> None:
    key = api_node.new_key(BALANCE)
    api = client(api_node, key)
    answer = api.audio.transcriptions.create(
        model="whisper-minute", file=("clip.wav", wav_clip(3), "audio/wav"), language="en"
    )
    assert answer.text == "hello from the mock transcription"
    assert spent(api_node, key) == 300  # 3 s at $0.006/min
    assert last_body(upstream)["language"] == "en"
    as_text = api.audio.transcriptions.create(
        model="whisper-minute", file=("clip.wav", wav_clip(3), "audio/wav"), response_format="text"
    )
    assert "hello" in str(as_text)
    assert spent(api_node, key) == 600  # no usage in a text answer: the WAV's own length
    api_node.assert_clean()


def test_transcription_priced_per_token(api_node: NodeHandle) -> None:
    key = api_node.new_key(BALANCE)
    client(api_node, key).audio.transcriptions.create(
        model="whisper-tokens", file=("clip.wav", wav_clip(3), "audio/wav")
    )
    assert spent(api_node, key) == 40  # 30 audio tokens at $1/Mtok + 5 words at $2/Mtok
    api_node.assert_clean()


def test_model_in_the_url(api_node: NodeHandle, upstream: ThreadedServer) -> None:
    key = api_node.new_key(BALANCE)
    api = openai.OpenAI(base_url=f"{api_node.url}/v1/models/test-model", api_key=key, max_retries=0)
    answer = api.chat.completions.create(**hello("ignored"), extra_body=EXACT)
    assert answer.usage is not None and answer.usage.prompt_tokens == 1000
    assert last_body(upstream)["model"] == "test-model"
    assert spent(api_node, key) == 2000


def test_unknown_parameters_reach_the_upstream(
    api_node: NodeHandle, upstream: ThreadedServer
) -> None:
    key = api_node.new_key(BALANCE)
    client(api_node, key).chat.completions.create(**hello(), extra_body={"top_k": 7})
    assert last_body(upstream)["top_k"] == 7
    client(api_node, key).responses.create(model="test-model", input="x", extra_body={"seed": 3})
    assert last_body(upstream)["seed"] == 3


def test_preset_prompt_comes_before_the_clients_system_message(
    api_node: NodeHandle, upstream: ThreadedServer
) -> None:
    key = api_node.new_key(BALANCE)
    api = client(api_node, key)
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    api.chat.completions.create(model="preset/pirate", messages=messages)
    sent = last_body(upstream)
    assert sent["model"] == "test-model"
    assert [m["content"] for m in sent["messages"]] == ["Talk like a pirate.", "Be brief.", "hi"]
    assert sent["temperature"] == 0.3
    api.chat.completions.create(model="preset/pirate", messages=messages, temperature=1.5)
    assert last_body(upstream)["temperature"] == 1.5  # the client's own value wins
    api.responses.create(model="preset/pirate", input="hi")
    assert last_body(upstream)["input"][0]["content"] == "Talk like a pirate."
    listed = {m.id: m for m in api.models.list()}
    assert extra(listed["preset/pirate"])["description"] == "Arr"
    api_node.assert_clean()


def test_bad_preset_selector_is_a_400(api_node: NodeHandle) -> None:
    key = api_node.new_key(BALANCE)
    with pytest.raises(openai.BadRequestError) as caught:
        client(api_node, key).chat.completions.create(**hello("preset/nope"))
    assert caught.value.code == "invalid_model_selector"
    assert api_node.balance(key) == BALANCE
