"""Audio uploads: how long a clip is (at most), and the multipart body sent upstream."""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass
from fractions import Fraction

# Compressed audio runs at 16 kbit/s or more; dividing its size by this errs long, never short.
MIN_BYTES_PER_SECOND = 2000


@dataclass(frozen=True)
class Upload:
    field: str
    filename: str
    content_type: str
    data: bytes


def wav_seconds(data: bytes) -> Fraction | None:
    """A RIFF/WAVE clip's exact duration from its header; None when it is not one."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, byte_rate = 12, 0
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk_id == b"fmt " and size >= 16:
            byte_rate = struct.unpack_from("<I", data, body + 8)[0]
        elif chunk_id == b"data":
            if not byte_rate:
                return None
            return Fraction(min(size, len(data) - body), byte_rate)
        pos = body + size + (size & 1)
    return None


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
