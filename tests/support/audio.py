"""Audio for the transcription tests: silent WAV clips of a given length."""

from __future__ import annotations

import io
import wave


def wav_clip(seconds: float, rate: int = 8000) -> bytes:
    """`seconds` of mono 16-bit silence as a WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as clip:
        clip.setnchannels(1)
        clip.setsampwidth(2)
        clip.setframerate(rate)
        clip.writeframes(b"\0\0" * int(rate * seconds))
    return buffer.getvalue()
