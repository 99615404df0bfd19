"""Single server-sent events of either dialect, to bytes and back.

Anthropic names each event (`event: message_start`) and repeats the name as the data's `type`;
OpenAI sends bare `data:` lines and ends with `data: [DONE]`. Splitting a byte stream into
whole events is the node's SseReader's work; these read and write one whole event.
"""

from __future__ import annotations

from typing import Any

import orjson

CHAT_DONE = b"data: [DONE]\n\n"


def encode_anthropic_event(event: dict[str, Any]) -> bytes:
    """`event: <type>` and `data: <json>`, as Anthropic writes them."""
    name = str(event.get("type", "message"))
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def encode_chat_chunk(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def event_data(event: bytes) -> dict[str, Any] | None:
    """The JSON object one whole event carries, or None (a comment, `[DONE]`, not JSON). An
    event named by its `event:` line but whose data lacks `type` gets the name as its type."""
    name = b""
    lines: list[bytes] = []
    for line in event.replace(b"\r\n", b"\n").split(b"\n"):
        if line.startswith(b"data:"):
            lines.append(line[5:].removeprefix(b" "))
        elif line.startswith(b"event:"):
            name = line[6:].strip()
    payload = b"\n".join(lines)
    if not payload or payload.strip() == b"[DONE]":
        return None
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    if name and "type" not in data:
        data["type"] = name.decode(errors="replace")
    return data


def parse_events(body: bytes) -> list[dict[str, Any]]:
    """Every JSON event in a whole SSE body, in order (tests and non-streaming readers)."""
    normal = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    events = (event_data(raw) for raw in normal.split(b"\n\n") if raw.strip())
    return [event for event in events if event is not None]
