"""Audio priced per minute: a WAV clip's length is read as a decoder reads it, or bounded by
its size, never taken from a header field the client can set to anything.

A forged `fmt ` chunk (a byte rate 50x the real one, a block align that disagrees, a format no
duration can be read from) used to price a 50 s clip as 1 s, whatever the balance. Now a clip
is priced from sample rate x channels x bits only when byte rate and block align agree with
them; otherwise up to the model's longest clip (max_audio_seconds), and charged what the upstream
reports within that.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import openai
import pytest

from tests.conftest import NodeHandle
from tests.support.audio import wav_clip
from tests.support.pg import BOTH_BACKENDS
from tests.test_spine import client

pytestmark = BOTH_BACKENDS

MSAT_A_SECOND = 100  # $0.006 a minute at $100 000/BTC
BALANCE = 1_000_000


@pytest.fixture
def audio_node(make_node: Callable[..., NodeHandle]) -> NodeHandle:
    return make_node(models=[{"id": "whisper-minute", "audio_usd_per_minute": 0.006}])


def transcribe(node: NodeHandle, key: str, clip: bytes) -> None:
    client(node, key).audio.transcriptions.create(
        model="whisper-minute", file=("clip.wav", clip, "audio/wav")
    )


def forged(clip: bytes, **fields: int) -> bytes:
    """`clip` (a plain PCM WAV) with fields of its `fmt ` chunk overwritten."""
    offsets = {"format": (20, "<H"), "byte_rate": (28, "<I"), "block_align": (32, "<H")}
    data = bytearray(clip)
    for name, value in fields.items():
        at, shape = offsets[name]
        struct.pack_into(shape, data, at, value)
    return bytes(data)


FIFTY_SECONDS = wav_clip(50)  # 8 kHz mono 16-bit: 16 000 bytes a second, 800 044 bytes
FORGERIES = [
    pytest.param(forged(FIFTY_SECONDS, byte_rate=50 * 16_000), id="byte rate 50x"),
    pytest.param(forged(FIFTY_SECONDS, block_align=100), id="block align"),
    pytest.param(forged(FIFTY_SECONDS, byte_rate=50 * 16_000, format=2), id="adpcm"),
]


@pytest.mark.parametrize("clip", FORGERIES)
def test_a_forged_header_is_charged_the_clips_real_length(
    audio_node: NodeHandle, clip: bytes
) -> None:
    key = audio_node.new_key(BALANCE)
    transcribe(audio_node, key, clip)  # the upstream decodes 50 s and bills them
    assert BALANCE - audio_node.balance(key) == 50 * MSAT_A_SECOND
    audio_node.assert_clean()


@pytest.mark.parametrize("clip", FORGERIES)
def test_a_forged_header_does_not_buy_50_s_for_the_price_of_1(
    audio_node: NodeHandle, clip: bytes
) -> None:
    key = audio_node.new_key(MSAT_A_SECOND)  # what the forged header claims the clip costs
    with pytest.raises(openai.APIStatusError) as refused:
        transcribe(audio_node, key, clip)
    assert refused.value.status_code == 402
    assert audio_node.balance(key) == MSAT_A_SECOND
    audio_node.assert_clean()


def extensible(seconds: int, rate: int = 8000, channels: int = 2, bits: int = 16) -> bytes:
    """A WAVE_FORMAT_EXTENSIBLE PCM clip (as many recorders write multichannel audio)."""
    frame = channels * bits // 8
    guid = bytes.fromhex("0100000000001000800000aa00389b71")  # KSDATAFORMAT_SUBTYPE_PCM
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * frame, frame, bits, 22, bits, 3)
    data = b"\0" * (seconds * rate * frame)
    chunks = b"fmt " + struct.pack("<I", len(fmt + guid)) + fmt + guid
    chunks += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


@pytest.mark.parametrize(
    "clip",
    [pytest.param(wav_clip(3), id="pcm"), pytest.param(extensible(3), id="extensible")],
)
def test_an_honest_header_is_priced_exactly(audio_node: NodeHandle, clip: bytes) -> None:
    key = audio_node.new_key(3 * MSAT_A_SECOND)  # exactly its length: no size bound needed
    transcribe(audio_node, key, clip)
    assert audio_node.balance(key) == 0
    audio_node.assert_clean()
