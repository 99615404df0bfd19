"""Audio uploads: how long a clip is (at most), and the multipart body sent upstream."""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass
from fractions import Fraction

# Chunks read from a WAV's header before giving up on it (the `fmt ` and `data` chunks come
# within the first few), and after its first `data` chunk before counting the rest as audio.
MAX_WAV_CHUNKS = 32
TO_THE_END = (0, 0xFFFFFFFF)  # a data size a decoder reads as "up to the end of the file"

# WAV clips whose duration is read from their header: PCM (1) or IEEE float (3), directly or as
# the subformat of WAVE_FORMAT_EXTENSIBLE, with ordinary sample sizes, channels and rates.
PCM_TAGS = (1, 3)
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")  # KSDATAFORMAT_SUBTYPE_* after the tag
SAMPLE_BITS = (8, 16, 24, 32)
MAX_CHANNELS = 8
MIN_RATE, MAX_RATE = 1000, 384_000


@dataclass(frozen=True)
class Upload:
    field: str
    filename: str
    content_type: str
    data: bytes


def wav_seconds(data: bytes) -> Fraction | None:
    """A RIFF/WAVE clip's duration as a decoder plays it, or longer; None (so the model's
    longest clip bounds it) unless each `fmt ` chunk before the first `data` chunk is plain PCM
    or float whose byte rate and block align agree with its other fields: a decoder goes by the
    sample rate and block align, so a byte rate that disagrees (a forged one, say 50x the real)
    would otherwise make a 50 s clip pass for 1 s.

    Read as FFmpeg does, erring long: the slowest of the `fmt ` chunks (FFmpeg takes the first,
    others the last); the audio is every later `data` chunk (FFmpeg plays them all), one whose
    size is 0 or 0xFFFFFFFF running to the end of the file, as does all past MAX_WAV_CHUNKS."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, rates = 12, []
    for _ in range(MAX_WAV_CHUNKS):
        if pos + 8 > len(data):
            return None
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if chunk_id == b"fmt ":
            rates.append(_bytes_per_second(data[pos + 8 : pos + 8 + min(size, 40)]))
        elif chunk_id == b"data":
            if not rates or not all(rates):
                return None
            return Fraction(_audio_bytes(data, pos), min(rates))
        pos += 8 + size + (size & 1)
    return None


def _audio_bytes(data: bytes, pos: int) -> int:
    """The bytes of the `data` chunks from `pos` on, the rest of the file once one runs to
    its end or MAX_WAV_CHUNKS were read."""
    total = 0
    for _ in range(MAX_WAV_CHUNKS):
        if pos + 8 > len(data):
            return total
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk_id == b"data" and size in TO_THE_END:
            return total + len(data) - body
        if chunk_id == b"data":
            total += min(size, len(data) - body)
        pos = body + size + (size & 1)
    return total + max(0, len(data) - pos)


def _bytes_per_second(fmt: bytes) -> int:
    """Bytes a second of a `fmt ` chunk's audio takes, when the chunk is one a duration can be
    read from (see `wav_seconds`); else 0."""
    if len(fmt) < 16:
        return 0
    tag, channels, rate, byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == WAVE_FORMAT_EXTENSIBLE:
        if len(fmt) < 40 or fmt[26:40] != _GUID_TAIL:
            return 0
        tag = struct.unpack_from("<H", fmt, 24)[0]  # the subformat's own tag
    if tag not in PCM_TAGS or bits not in SAMPLE_BITS or not 1 <= channels <= MAX_CHANNELS:
        return 0
    if not MIN_RATE <= rate <= MAX_RATE:
        return 0
    frame = channels * bits // 8
    if block_align != frame or byte_rate != rate * frame:
        return 0
    return int(rate * frame)


def seconds_bound(data: bytes, longest: int) -> tuple[Fraction, bool]:
    """(the most seconds the clip can last, whether read from the clip): a WAV's duration, else
    `longest`, the model's longest clip. Nothing else bounds compressed audio: a few hundred
    bytes of FLAC or Opus may hold minutes of silence, and a header can say anything."""
    exact = wav_seconds(data)
    if exact is not None:
        return exact, True
    return Fraction(longest), False


def encode_multipart(fields: list[tuple[str, str]], uploads: list[Upload]) -> tuple[bytes, str]:
    """A multipart/form-data body (bytes, so a failover can send it again) and its type."""
    boundary = "nutgate-" + secrets.token_hex(16)
    parts: list[bytes] = []
    for name, value in fields:
        parts.append(_part_head(boundary, f'form-data; name="{_q(name)}"') + value.encode())
    for up in uploads:
        disposition = f'form-data; name="{_q(up.field)}"; filename="{_q(up.filename)}"'
        parts.append(_part_head(boundary, disposition, up.content_type) + up.data)
    body = b"\r\n".join(parts) + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _part_head(boundary: str, disposition: str, content_type: str | None = None) -> bytes:
    head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    return (head + "\r\n").encode()


def _q(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "").replace("\n", "")
