"""Server-sent events from an upstream: split into whole events, read usage and output size.

Events are passed on as soon as they are whole (an event is never held for the next one); the
only ones held back are the usage chunk and `[DONE]`, so the node can add the cost (and change)
to the end of the stream after it has settled. When the upstream's stream ends, `close` hands
over a last event that lacks only its blank line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from node.errors import NodeError
from node.pricing.prices import Usage

DONE = b"data: [DONE]"


class EventSplitter:
    """Bytes in, whole events out (each with its blank-line terminator)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._cr = False  # the last chunk ended in "\r": its "\n" may open the next one

    def feed(self, data: bytes) -> list[bytes]:
        if self._cr and data.startswith(b"\n"):  # a CRLF that TCP cut in two
            data = data[1:]
        self._cr = data.endswith(b"\r")
        if b"\r" in data:  # CRLF and CR end lines too (most upstreams send LF alone)
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *events, self._buffer = (self._buffer + data).split(b"\n\n")
        return [event + b"\n\n" for event in events]

    def rest(self) -> bytes | None:
        """The stream has ended: its last event, if it lacks only its blank line (strict SSE
        drops it, but it is often the usage the call is charged from). Whole means `[DONE]`
        or JSON that parses: an event cut short is dropped."""
        event, self._buffer = self._buffer.strip(b"\n"), b""
        payload = _data_of(event)
        if payload is None or not (payload.strip() == b"[DONE]" or _is_json(payload)):
            return None
        return event + b"\n\n"


class SseReader:
    """An OpenAI stream relayed to an OpenAI client (node/proxy/wires.py names the others)."""

    def __init__(self) -> None:
        self._split = EventSplitter()
        self.usage: Usage | None = None
        self.usage_event: dict[str, Any] | None = None
        self.usage_event_name = b""  # its `event:` line (Responses streams name their events)
        self.response: dict[str, Any] | None = None  # a Responses stream's latest snapshot
        self.done = False
        self.output_chars = 0
        self.output_chunks = 0
        self.finish_reason: Any = None  # how the first answer (choice 0) ended, once it has
        self._model: str | None = None
        self._closing: dict[str, Any] | None = None
        self._reshape: Callable[[bytes], bytes] = bytes

    def feed(self, data: bytes) -> list[bytes]:
        """Bytes in; whole events out (each with its blank-line terminator), less held ones."""
        return [event for event in self._split.feed(data) if self._inspect(event)]

    @property
    def usage_final(self) -> bool:
        """The usage is the upstream's count for the whole answer (it comes once, at the end)."""
        return self.usage is not None

    def close(self) -> list[bytes]:
        """The upstream's stream has ended: its last event, if it lacks only its blank line."""
        event = self._split.rest()
        return [event] if event is not None and self._inspect(event) else []

    def dress(
        self, model: str, closing: dict[str, Any] | None, reshape: Callable[[bytes], bytes]
    ) -> None:
        """The ending names `model` (the one the client asked for), carries `closing` (a last
        choice, for a client that did not ask for the usage chunk: every chunk has one) and
        is reshaped as every event before it (the legacy `functions` format)."""
        self._model, self._closing, self._reshape = model, closing, reshape

    def ending(
        self, cost: dict[str, Any], extras: dict[str, Any], fallback: dict[str, Any]
    ) -> bytes:
        """The end of the stream, after settling: the usage event with the cost (the upstream's
        usage, else `fallback`, an estimate) and `extras` (change), then [DONE]."""
        final = self.usage_event or {"object": "chat.completion.chunk", "choices": []}
        holder = final["response"] if isinstance(final.get("response"), dict) else final
        usage = holder.get("usage") if isinstance(holder.get("usage"), dict) else None
        if usage is None:
            usage = holder["usage"] = dict(fallback)
        usage.update(cost)
        if self._model is not None and isinstance(final.get("model"), str):
            final["model"] = self._model
        if self._closing is not None:
            final["choices"] = [self._closing]
        final.update(extras)
        head = b"event: " + self.usage_event_name + b"\n" if self.usage_event_name else b""
        return head + self._reshape(encode_event(final)) + b"data: [DONE]\n\n"

    def failure(self, error: NodeError, extras: dict[str, Any]) -> bytes:
        """The end of a stream the upstream broke: the error, with `extras` (change)."""
        return encode_event(error.envelope() | extras)

    def _inspect(self, event: bytes) -> bool:
        """Note what the event tells; True if it is to be passed on now."""
        payload = _data_of(event)
        if payload is None:
            return True
        if payload.strip() == b"[DONE]":
            self.done = True
            return False
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return True
        if not isinstance(chunk, dict):
            return True
        self._count_output(chunk)
        usage = Usage.from_openai(chunk.get("usage"))
        if isinstance(chunk.get("response"), dict):  # Responses API
            self.response = chunk["response"]
            if usage is None:
                usage = Usage.from_openai(self.response.get("usage"))
        if usage is not None:
            self.usage = usage
            if not chunk.get("choices"):
                self.usage_event = chunk
                self.usage_event_name = _event_name(event)
                return False
            # Usage on a content chunk (some upstreams): it goes on now, and the closing
            # event repeats it with the cost, rather than an estimate.
            head = {k: chunk[k] for k in ("id", "object", "created", "model") if k in chunk}
            self.usage_event = head | {"choices": [], "usage": chunk.get("usage")}
        return True

    def _count_output(self, chunk: dict[str, Any]) -> None:
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                self.finish_reason = choice.get("finish_reason") or self.finish_reason
        chars = output_chars(chunk.get("choices"), "delta")
        delta = chunk.get("delta")  # Responses API text deltas
        if isinstance(delta, str):
            chars += len(delta)
        if chars:
            self.output_chars += chars
            self.output_chunks += 1

    def estimated_output_tokens(self) -> int:
        # Upstreams send about one token per chunk; four characters a token otherwise.
        return max(self.output_chunks, -(-self.output_chars // 4))


def _data_of(event: bytes) -> bytes | None:
    if event.startswith(b"data: ") and event.find(b"\n") == len(event) - 2:  # one line: most
        return event[6:-2]
    lines = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def _is_json(payload: bytes) -> bool:
    try:
        orjson.loads(payload)
    except orjson.JSONDecodeError:
        return False
    return True


def _event_name(event: bytes) -> bytes:
    for line in event.split(b"\n"):
        if line.startswith(b"event:"):
            return line[6:].strip()
    return b""


def output_chars(choices: Any, key: str) -> int:
    """Characters of generated text, reasoning and tool arguments in OpenAI `choices`."""
    if not isinstance(choices, list):
        return 0
    total = 0
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        total += _text_len(choice.get("text"))
        part = choice.get(key)
        if not isinstance(part, dict):
            continue
        for field in ("content", "reasoning_content", "reasoning", "refusal"):
            total += _text_len(part.get(field))
        calls = part.get("tool_calls")
        for call in calls if isinstance(calls, list) else []:
            if isinstance(call, dict) and isinstance(call.get("function"), dict):
                total += _text_len(call["function"].get("arguments"))
                total += _text_len(call["function"].get("name"))
    return total


def _text_len(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def encode_event(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def model_renamed(event: bytes, upstream_id: str, asked: str) -> bytes:
    """An event naming the model by the upstream's id, named as the client asked for it (an
    alias, a preset): the id is found in the JSON as written, with or without a space."""
    was, now = orjson.dumps(upstream_id), orjson.dumps(asked)
    for sep in (b":", b": "):
        event = event.replace(b'"model"' + sep + was, b'"model"' + sep + now)
    return event
