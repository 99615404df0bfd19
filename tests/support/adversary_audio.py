"""Audio a hostile client uploads, and an upstream that measures it as a real decoder does.

A transcription upstream decodes the clip (OpenAI's whisper and most servers decode with
FFmpeg) and bills the seconds it decoded. `decoded_seconds` measures a clip the way FFmpeg's
demuxers read it (libavformat/wavdec.c, flacdec.c):

    WAV     the FIRST `fmt ` chunk only ("only parse the first 'fmt ' tag found"); audio from
            the LAST `data` chunk found while scanning the header, read to its declared end, or
            to the end of the file when its size is 0 or 0xFFFFFFFF; then any later `data`
            chunk (`find_tag` in wav_read_packet)
    FLAC    the samples of its frames (STREAMINFO's total samples says the same)

`ExactUpstream` answers /v1/audio/transcriptions with that duration as its usage (after
`delay_s`, the time transcribing takes) and keeps `billed_seconds`.
"""

from __future__ import annotations

import asyncio
import math
import struct
from typing import Any

from aiohttp import web


def riff(*chunks: tuple[bytes, bytes]) -> bytes:
    body = b"WAVE" + b"".join(cid + struct.pack("<I", len(data)) + data + b"\0" * (len(data) & 1)
                              for cid, data in chunks)  # fmt: skip
    return b"RIFF" + struct.pack("<I", len(body)) + body


def fmt_pcm(rate: int, channels: int, bits: int) -> bytes:
    frame = channels * bits // 8
    return struct.pack("<HHIIHH", 1, channels, rate, rate * frame, frame, bits)


def with_chunk_size(clip: bytes, chunk_id: bytes, size: int) -> bytes:
    """`clip` with the size field of its first `chunk_id` chunk overwritten."""
    at = clip.index(chunk_id, 12) + 4
    return clip[:at] + struct.pack("<I", size) + clip[at + 4 :]


# --- FLAC: silence as CONSTANT subframes (a few bytes for up to 65 536 samples) ---------------


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def _utf8_number(n: int) -> bytes:
    """FLAC's UTF-8-like coding of a frame number."""
    if n < 0x80:
        return bytes([n])
    if n < 0x800:
        return bytes([0xC0 | n >> 6, 0x80 | n & 0x3F])
    if n < 0x10000:
        return bytes([0xE0 | n >> 12, 0x80 | n >> 6 & 0x3F, 0x80 | n & 0x3F])
    raise ValueError("too many frames for this helper")


def flac_silence(seconds: int, rate: int = 16000, block: int = 65535) -> bytes:
    """`seconds` of 16-bit mono digital silence as a valid FLAC stream (not streamable-subset:
    blocks of 65 535 samples, as `flac --lax` may write): ~14 bytes per 4 s at 16 kHz."""
    total = seconds * rate
    info = struct.pack(">HH", block, block) + b"\0" * 6  # min/max block, min/max frame unknown
    # 20 bits rate, 3 bits channels-1 (0), 5 bits bits-1 (15), 36 bits total samples
    packed = (rate << 44) | (0 << 41) | (15 << 36) | total
    info += packed.to_bytes(8, "big") + b"\0" * 16  # MD5 unknown
    out = b"fLaC" + bytes([0x80]) + len(info).to_bytes(3, "big") + info  # last block: STREAMINFO
    rate_code = {8000: 0b0100, 16000: 0b0101, 22050: 0b0110, 24000: 0b0111}[rate]
    frame_no, left = 0, total
    while left > 0:
        n = min(block, left)
        head = bytes([0xFF, 0xF8])  # sync, reserved 0, fixed block size
        head += bytes([0b0111 << 4 | rate_code])  # block size: 16 bits follow; the rate
        head += bytes([0b0000 << 4 | 0b100 << 1])  # mono; 16 bits a sample
        head += _utf8_number(frame_no) + struct.pack(">H", n - 1)
        head += bytes([_crc8(head)])
        frame = head + bytes([0b00000000]) + b"\0\0"  # CONSTANT subframe, value 0
        out += frame + struct.pack(">H", _crc16(frame))
        frame_no, left = frame_no + 1, left - n
    return out


# --- measuring as the decoder does ------------------------------------------------------------


def _wav_seconds(clip: bytes) -> float:
    pos, data_at = 12, None
    fmt: tuple[int, ...] | None = None
    while pos + 8 <= len(clip):
        cid, size = clip[pos : pos + 4], struct.unpack_from("<I", clip, pos + 4)[0]
        if cid == b"fmt " and fmt is None:
            fmt = struct.unpack_from("<HHIIHH", clip, pos + 8)
        elif cid == b"data":
            data_at = pos
            if size in (0, 0xFFFFFFFF):
                break  # read to the end of the file
        pos += 8 + size + (size & 1)
    assert fmt is not None and data_at is not None
    _, channels, rate, _, _, bits = fmt
    audio, pos = 0, data_at
    while pos + 8 <= len(clip):  # this data chunk, then any later one (find_tag)
        cid, size = clip[pos : pos + 4], struct.unpack_from("<I", clip, pos + 4)[0]
        body = pos + 8
        if cid == b"data":
            end = len(clip) if size in (0, 0xFFFFFFFF) else min(len(clip), body + size)
            audio += end - body
        pos = body + size + (size & 1) if size not in (0, 0xFFFFFFFF) else len(clip)
    return audio / (rate * channels * bits // 8)


def _flac_seconds(clip: bytes) -> float:
    info = clip[8 : 8 + 34]
    packed = int.from_bytes(info[10:18], "big")
    rate, total = packed >> 44, packed & ((1 << 36) - 1)
    return total / rate


def decoded_seconds(clip: bytes) -> float:
    if clip[:4] == b"fLaC":
        return _flac_seconds(clip)
    if clip[:4] == b"RIFF" and clip[8:12] == b"WAVE":
        return _wav_seconds(clip)
    raise ValueError("not a clip this stand-in decodes")


class ExactUpstream:
    """Transcribes per minute, billing the seconds a decoder gets out of the clip."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s  # how long transcribing takes before the answer starts
        self.billed_seconds: list[int] = []
        self.app = web.Application()
        self.app.add_routes(
            [
                web.post("/v1/audio/transcriptions", self.transcriptions),
                web.get("/v1/models", self.models),
            ]
        )

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": []})

    async def transcriptions(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form["file"]
        assert isinstance(upload, web.FileField)
        seconds = math.ceil(decoded_seconds(upload.file.read()))
        self.billed_seconds.append(seconds)  # decoded and transcribed: billed
        await asyncio.sleep(self.delay_s)
        usage: dict[str, Any] = {"type": "duration", "seconds": seconds}
        return web.json_response({"text": "...", "usage": usage})
