"""Audio uploads: how long a clip is (at most), and the multipart body sent upstream."""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass
from fractions import Fraction

# Compressed audio runs at 16 kbit/s or more; dividing its size by this errs long, never short.
MIN_BYTES_PER_SECOND = 2000

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
    """A RIFF/WAVE clip's exact duration, as a decoder reads it: its data chunk's bytes over
    sample rate x channels x bytes per sample. None (so the size bound applies) unless the clip
    is plain PCM or float whose byte rate and block align agree with those fields: a decoder
    goes by the sample rate and block align, so a byte rate that disagrees (a forged one, say
    50x the real) would otherwise make a 50 s clip pass for 1 s."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, frame_rate = 12, 0
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk_id == b"fmt ":
            frame_rate = _bytes_per_second(data[body : body + min(size, 40)])
        elif chunk_id == b"data":
            if not frame_rate:
                return None
            return Fraction(min(size, len(data) - body), frame_rate)
        pos = body + size + (size & 1)
    return None


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


def seconds_bound(data: bytes) -> tuple[Fraction, bool]:
    """(the most seconds the clip can last, whether that is exact)."""
    exact = wav_seconds(data)
    if exact is not None:
        return exact, True
    return Fraction(len(data), MIN_BYTES_PER_SECOND), False


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
