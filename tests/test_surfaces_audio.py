"""POST /v1/audio/translations through the OpenAI SDK, metered as a transcription."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from node.proxy.audio import encode_multipart
from tests.conftest import NodeHandle
from tests.support.audio import wav_clip
from tests.support.httpfetch import fetch
from tests.support.servers import ThreadedServer
from tests.test_spine import client

BALANCE = 1_000_000


@pytest.fixture
def audio_node(make_node: Callable[..., NodeHandle]) -> NodeHandle:
    return make_node(
        models=[
            {"id": "whisper-minute", "audio_usd_per_minute": 0.006},
            {"id": "whisper-tokens", "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0,
             "max_output_tokens": 1000},
        ]
    )  # fmt: skip


def test_translation_is_charged_per_minute(
    audio_node: NodeHandle, upstream: ThreadedServer
) -> None:
    key = audio_node.new_key(BALANCE)
    api = client(audio_node, key)
    answer = api.audio.translations.create(
        model="whisper-minute", file=("clip.wav", wav_clip(3), "audio/wav"), prompt="names"
    )
    assert answer.text == "hello from the mock translation"
    sent = upstream.mock.received[-1]
    assert sent["path"] == "/v1/audio/translations"
    assert sent["body"]["prompt"] == "names"
    assert BALANCE - audio_node.balance(key) == 300  # 3 s at $0.006/min, as a transcription
    as_text = api.audio.translations.create(
        model="whisper-minute", file=("clip.wav", wav_clip(3), "audio/wav"), response_format="text"
    )
    assert "translation" in str(as_text)
    assert BALANCE - audio_node.balance(key) == 600
    audio_node.assert_clean()


def test_translation_priced_per_token(audio_node: NodeHandle) -> None:
    key = audio_node.new_key(BALANCE)
    client(audio_node, key).audio.translations.create(
        model="whisper-tokens", file=("clip.wav", wav_clip(3), "audio/wav")
    )
    assert BALANCE - audio_node.balance(key) == 40  # 30 audio tokens + 5 words, as transcribed
    audio_node.assert_clean()


def test_a_translation_without_a_file_is_refused(audio_node: NodeHandle) -> None:
    key = audio_node.new_key(BALANCE)
    body, content_type = encode_multipart([("model", "whisper-minute")], [])
    headers = {"Authorization": f"Bearer {key}", "Content-Type": content_type}
    reply = fetch(f"{audio_node.url}/v1/audio/translations", "POST", headers, body)
    assert reply.status == 400
    assert reply.json()["error"]["param"] == "file"
    assert audio_node.balance(key) == BALANCE
