"""Adversarial audio: clips whose length the node reads shorter than the upstream decodes.

Rule (issue 20, docs/billing.md "POST /v1/audio/transcriptions"): a transcription is reserved
up to the clip's duration as the upstream will bill it ("read from its header when it checks
out, else from its size"), and an upstream that bills per that row never bills more than the
node charged. The upstream decodes with FFmpeg (whisper does); `tests/support/adversary_audio`
measures each clip as FFmpeg's demuxers read it and bills those seconds. Every clip below is a
file FFmpeg (and libsndfile, for the FLAC one) decodes to the duration billed.

Model: $0.006 a minute at $100 000/BTC, 100 msat a second.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import aiohttp
import pytest

from tests.conftest import NodeHandle
from tests.support.adversary_audio import (
    ExactUpstream,
    decoded_seconds,
    flac_silence,
    fmt_pcm,
    riff,
    with_chunk_size,
)
from tests.support.servers import ThreadedServer

MSAT_A_SECOND = 100
BALANCE = 10_000_000


def pcm_seconds(seconds: int, rate: int = 8000) -> bytes:
    return b"\0\0" * (seconds * rate)  # mono 16-bit silence


@pytest.fixture
def exact_upstream(request: pytest.FixtureRequest) -> Iterator[ThreadedServer]:
    mock = ExactUpstream(delay_s=getattr(request, "param", 0.0))
    server = ThreadedServer(lambda: mock.app).start()
    server.mock = mock
    yield server
    server.stop()


@pytest.fixture
def audio_node(make_node: Callable[..., NodeHandle], exact_upstream: ThreadedServer) -> NodeHandle:
    upstream = {"name": "whisper", "base_url": f"{exact_upstream.url}/v1", "list_models": False,
                "first_byte_timeout_s": 1.0}  # fmt: skip
    return make_node(
        upstreams=[upstream],
        models=[{"id": "whisper-minute", "audio_usd_per_minute": 0.006}],
    )


async def transcribe(node: NodeHandle, key: str, clip: bytes, name: str) -> int:
    form = aiohttp.FormData({"model": "whisper-minute"})
    form.add_field("file", clip, filename=name, content_type="application/octet-stream")
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{node.url}/v1/audio/transcriptions", data=form, headers=headers) as resp,
    ):
        await resp.read()
        return resp.status


FIFTY_S = pcm_seconds(50)
WAV_TRICKS = [
    pytest.param(
        with_chunk_size(riff((b"fmt ", fmt_pcm(8000, 1, 16)), (b"data", FIFTY_S)), b"data", 0),
        id="data-size-0",  # FFmpeg: a data chunk of size 0 runs to the end of the file
    ),
    pytest.param(
        riff(
            (b"fmt ", fmt_pcm(8000, 1, 16)),  # FFmpeg parses only the first fmt chunk
            (b"fmt ", fmt_pcm(384_000, 8, 32)),  # the node keeps the last
            (b"data", FIFTY_S),
        ),
        id="two-fmt-chunks",
    ),
    pytest.param(
        riff((b"fmt ", fmt_pcm(8000, 1, 16)), (b"data", b"\0\0"), (b"data", FIFTY_S)),
        id="two-data-chunks",  # FFmpeg plays the last data chunk; the node measures the first
    ),
]


@pytest.mark.parametrize("clip", WAV_TRICKS)
async def test_a_wav_is_reserved_as_long_as_the_decoder_plays_it(
    audio_node: NodeHandle, exact_upstream: ThreadedServer, clip: bytes
) -> None:
    """Attack: a PCM WAV whose header "checks out" for the node (PCM, byte rate and block
    align consistent) but which a decoder plays far longer than the node computes:
    - its data chunk's size field is 0 (the node reads 0 s; FFmpeg reads to the end of the
      file, as it does for WAVs written to a pipe);
    - two `fmt ` chunks (the node prices with the last, 384 kHz x 8 x 32 bits; FFmpeg decodes
      with the first, 8 kHz mono 16-bit);
    - two `data` chunks (the node measures the first, 2 bytes; FFmpeg plays the last).

    Impact: 50 s (5000 msat) transcribed for 0-100 msat, whatever the balance; the clip is
    "exact", so the node neither falls back to the size bound nor charges beyond its reading.

    Expected: the node's reading agrees with the decoder's or errs long: duration from the
    FIRST fmt chunk and from every byte after the first data chunk's header to the end of the
    file (a data size of 0 or 0xFFFFFFFF meaning "to the end"); a clip with several fmt or
    data chunks falls back to the size bound, or is refused (node/audio.py).
    """
    key = audio_node.new_key(BALANCE)
    assert decoded_seconds(clip) >= 50
    assert await transcribe(audio_node, key, clip, "clip.wav") == 200
    billed = exact_upstream.mock.billed_seconds[-1]
    charged = BALANCE - audio_node.balance(key)
    assert charged >= billed * MSAT_A_SECOND, (charged, billed * MSAT_A_SECOND)
    audio_node.assert_clean()


async def test_compressed_audio_is_reserved_as_long_as_it_decodes(
    audio_node: NodeHandle, exact_upstream: ThreadedServer
) -> None:
    """Attack: ten minutes of digital silence as FLAC: 1972 bytes, a valid stream (libFLAC
    decodes it to 600.0 s). node/audio.py bounds any non-WAV clip by its size at 2000 bytes
    a second ("compressed audio runs at 16 kbit/s or more"), here 1 s. FLAC of silence or of
    quiet speech, Opus at 6 kbit/s (750 B/s), AMR/Speex all hold more than that.

    Impact: 600 s billed (60 000 msat) for 100 msat charged: 600x, on any balance.

    Expected: a clip whose length cannot be read exactly is reserved up to a bound the upstream
    cannot exceed: the container's own duration where the format states it (FLAC STREAMINFO
    total samples, checked against the frames), else the model's longest accepted clip
    (a configured `max_audio_seconds`), or refused (node/audio.py, node/metering.py).
    """
    key = audio_node.new_key(BALANCE)
    clip = flac_silence(600)
    assert len(clip) < 2000 and decoded_seconds(clip) == 600
    assert await transcribe(audio_node, key, clip, "silence.flac") == 200
    billed = exact_upstream.mock.billed_seconds[-1]
    charged = BALANCE - audio_node.balance(key)
    assert charged >= billed * MSAT_A_SECOND, (charged, billed * MSAT_A_SECOND)
    audio_node.assert_clean()


@pytest.mark.parametrize("exact_upstream", [2.0], indirect=True)
async def test_a_transcription_that_times_out_is_charged_what_was_sent(
    audio_node: NodeHandle, exact_upstream: ThreadedServer
) -> None:
    """Attack: upload a clip the node cannot time exactly (compressed) to an upstream slower
    than its `first_byte_timeout_s` (a long file takes whisper minutes). AudioMeter plans a
    floor of 0 unless the clip is an exact WAV (and always 0 when priced by token), so the 504
    costs nothing, while the upstream transcribed, and bills, the whole clip. On a model with
    several upstreams, every one of them is tried for free.

    Impact: here 60 s billed (6000 msat), 0 charged.

    Expected: once the clip was sent, it is charged at least the reservation's audio (the
    upstream bills decoding whatever follows), as for a timed-out chat prompt
    (node/proxy/unit_meters.py AudioMeter.plan: floor = the audio's cost).
    """
    key = audio_node.new_key(BALANCE)
    clip = flac_silence(60)
    assert await transcribe(audio_node, key, clip, "minute.flac") == 504
    billed = exact_upstream.mock.billed_seconds[-1]
    charged = BALANCE - audio_node.balance(key)
    assert charged >= min(billed, 1) * MSAT_A_SECOND, (charged, billed * MSAT_A_SECOND)
    audio_node.assert_clean()
