"""Streams that are, or become, Anthropic's Messages events: relayed as they come.

Each reader does what `SseReader` does for an OpenAI stream relayed as it is: whole events go
on at once, the usage is read for the charge, and the end is held back so the node can settle
first and then write it with the cost (and an X-Cashu payer's change):

    MessagesReader   an Anthropic upstream to an Anthropic client: events pass as they are;
                     `message_delta` and `message_stop` (or an `error`) are held, and written at
                     the end with `usage.cost_msat` and `x_cashu` added to the message_delta
    ChatAsMessages   an OpenAI-compatible upstream to an Anthropic client (ChunksToEvents)
    MessagesAsChat   an Anthropic upstream to an OpenAI client (EventsToChunks): the usage chunk
                     with `cost_msat` and `x_cashu`, then [DONE], as on any chat stream

The official SDKs' stream parsers take the extra fields: Anthropic's models and OpenAI's keep
fields they do not know (`event.usage.model_extra["cost_msat"]`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from node.dialects.chat_to_messages_stream import EventsToChunks
from node.dialects.messages_to_chat_stream import ChunksToEvents
from node.dialects.sse import CHAT_DONE, encode_anthropic_event, encode_chat_chunk, event_data
from node.dialects.usage import AnthropicUsage, merge_stream_usage
from node.errors import NodeError
from node.pricing.prices import Usage
from node.proxy.sse import EventSplitter, SseReader

Json = dict[str, Any]
HELD = ("message_delta", "message_stop", "error")
EARLY_END = "the upstream ended the stream before its end"


def first_event(head: bytes, *, ended: bool = False) -> Json | None:
    """The first event of a stream's opening bytes (its JSON; `{}` if it carries none), or
    None while `head` holds no whole one (`ended`: the stream has ended, and a last event
    lacking only its blank line counts)."""
    split = EventSplitter()
    events = split.feed(head)
    if not events and ended and (last := split.rest()) is not None:
        events.append(last)
    return (event_data(events[0]) or {}) if events else None


def anthropic_failure(error: NodeError, extras: Json) -> bytes:
    return encode_anthropic_event(error.anthropic_envelope() | extras)


class MessagesReader:
    """An Anthropic event stream: split, its usage noted, its end held."""

    response: Json | None = None  # (a Responses snapshot: never, here)

    def __init__(self) -> None:
        self._split = EventSplitter()
        self._raw_usage: Json = {}
        self._final = False  # message_delta has given the output count
        self.delta: Json | None = None  # the held message_delta
        self.error: Json | None = None  # an `error` event the upstream sent
        self.output_chars = 0
        self.output_chunks = 0

    @property
    def usage(self) -> Usage | None:
        """The upstream's counts once final; before (a stream cut short), the prompt's as
        message_start gave them and the output produced so far (or as reported, if more)."""
        if self._final:
            return Usage.from_anthropic(self._raw_usage)
        reported = self._raw_usage.get("output_tokens")
        output = reported if isinstance(reported, int) and not isinstance(reported, bool) else 0
        produced = max(output, self.estimated_output_tokens())
        return Usage.from_anthropic(self._raw_usage | {"output_tokens": produced})

    @property
    def usage_final(self) -> bool:
        return self._final

    @property
    def messages_usage(self) -> Json | None:
        """The four counts as Anthropic reports them, once final."""
        return dict(self._raw_usage) if self._final and self.usage is not None else None

    def estimated_output_tokens(self) -> int:
        return max(self.output_chunks, -(-self.output_chars // 4))

    def feed(self, data: bytes) -> list[bytes]:
        return [event for event in self._split.feed(data) if self._inspect(event)[0]]

    def close(self) -> list[bytes]:
        event = self._split.rest()
        return [event] if event is not None and self._inspect(event)[0] else []

    def events(self, data: bytes) -> list[Json]:
        """The JSON of each whole event to pass on (for a translating reader)."""
        out = []
        for event in self._split.feed(data):
            passed, parsed = self._inspect(event)
            if passed and parsed is not None:
                out.append(parsed)
        return out

    def rest(self) -> list[Json]:
        event = self._split.rest()
        passed, parsed = self._inspect(event) if event is not None else (False, None)
        return [parsed] if passed and parsed is not None else []

    def _inspect(self, event: bytes) -> tuple[bool, Json | None]:
        """Note what the event tells: (pass it on now, its JSON)."""
        data = event_data(event)
        kind = data.get("type") if data is not None else None
        if data is None or kind in ("ping", "content_block_start", "content_block_stop"):
            return True, data
        if kind == "message_start" and isinstance(data.get("message"), dict):
            self._raw_usage = merge_stream_usage(self._raw_usage, data["message"].get("usage"))
        elif kind == "content_block_delta":
            self._count(data.get("delta"))
        elif kind == "message_delta":
            usage = data.get("usage")
            self._raw_usage = merge_stream_usage(self._raw_usage, usage)
            self._final = self._final or (isinstance(usage, dict) and "output_tokens" in usage)
            self.delta = data
        elif kind == "error":
            self.error = data
        return kind not in HELD, data

    def _count(self, delta: Any) -> None:
        if not isinstance(delta, dict):
            return
        for field in ("text", "thinking", "partial_json"):
            if isinstance(delta.get(field), str):
                self.output_chars += len(delta[field])
                self.output_chunks += 1

    def ending(self, cost: Json, extras: Json, fallback: Json) -> bytes:
        """message_delta with the cost (and change), then message_stop; or the upstream's error
        (or ours, if it ended early) with them."""
        if self.error is not None or self.delta is None:
            error = self.error or {"type": "error", "error": {"type": "api_error",
                                                              "message": EARLY_END}}  # fmt: skip
            return encode_anthropic_event(error | cost | extras)
        return _delta_and_stop(self.delta, self.messages_usage or fallback, cost, extras)

    def failure(self, error: NodeError, extras: Json) -> bytes:
        return anthropic_failure(error, extras)


def _delta_and_stop(delta: Json, usage: Json, cost: Json, extras: Json) -> bytes:
    final = delta | {"usage": usage | cost} | extras
    return encode_anthropic_event(final) + encode_anthropic_event({"type": "message_stop"})


class ChatAsMessages:
    """An OpenAI-compatible upstream's chat chunks, to an Anthropic client as its events."""

    response: Json | None = None

    def __init__(self, model: str, stop_sequences: Sequence[str], input_estimate: int) -> None:
        self._chat = SseReader()
        self._to = ChunksToEvents(
            model=model, stop_sequences=stop_sequences, input_tokens=input_estimate
        )
        self._delta: Json | None = None
        self._error: Json | None = None

    @property
    def usage(self) -> Usage | None:
        return self._chat.usage

    @property
    def usage_final(self) -> bool:
        return self._chat.usage_final

    def estimated_output_tokens(self) -> int:
        return self._chat.estimated_output_tokens()

    def feed(self, data: bytes) -> list[bytes]:
        return self._translate(self._chat.feed(data))

    def close(self) -> list[bytes]:
        return self._translate(self._chat.close())

    def _translate(self, raw: list[bytes]) -> list[bytes]:
        out: list[bytes] = []
        for event in raw:
            chunk = event_data(event)
            if chunk is not None:
                out += self._keep(self._to.feed(chunk))
        return out

    def _keep(self, events: list[Json]) -> list[bytes]:
        """Encode the events to pass on; hold message_delta and an error for the end."""
        out: list[bytes] = []
        for event in events:
            kind = event.get("type")
            if kind == "message_delta":
                self._delta = event
            elif kind == "error":
                self._error = event
            elif kind != "message_stop":
                out.append(encode_anthropic_event(event))
        return out

    def ending(self, cost: Json, extras: Json, fallback: Json) -> bytes:
        head: list[bytes] = []
        if self._chat.usage_event is not None:  # the usage chunk, held by the chat reader
            head += self._keep(self._to.feed(self._chat.usage_event))
        if self._error is None:
            estimate = AnthropicUsage(fallback.get("input_tokens", 0), fallback["output_tokens"])
            head += self._keep(self._to.finish(estimate))
        if self._error is not None or self._delta is None:
            error = self._error or {"type": "error", "error": {"type": "api_error",
                                                               "message": EARLY_END}}  # fmt: skip
            return b"".join(head) + encode_anthropic_event(error | extras)
        usage = self._to.usage.as_messages_usage() if self._to.usage is not None else fallback
        return b"".join(head) + _delta_and_stop(self._delta, usage, cost, extras)

    def failure(self, error: NodeError, extras: Json) -> bytes:
        return anthropic_failure(error, extras)


class MessagesAsChat:
    """An Anthropic upstream's events, to an OpenAI client as chat chunks."""

    response: Json | None = None

    def __init__(self, model: str) -> None:
        self._events = MessagesReader()
        self._to = EventsToChunks(model=model, include_usage=False)

    @property
    def usage(self) -> Usage | None:
        return self._events.usage

    @property
    def usage_final(self) -> bool:
        return self._events.usage_final

    def estimated_output_tokens(self) -> int:
        return self._events.estimated_output_tokens()

    def feed(self, data: bytes) -> list[bytes]:
        return [encode_chat_chunk(c) for e in self._events.events(data) for c in self._to.feed(e)]

    def close(self) -> list[bytes]:
        return [encode_chat_chunk(c) for e in self._events.rest() for c in self._to.feed(e)]

    def ending(self, cost: Json, extras: Json, fallback: Json) -> bytes:
        if self._events.error is not None:
            chunks = self._to.feed(self._events.error)  # the error chunk comes last
            if chunks:
                chunks[-1].update(extras)
            return b"".join(encode_chat_chunk(c) for c in chunks) + CHAT_DONE
        delta = self._events.delta
        chunks = (self._to.feed(delta) if delta is not None else []) + self._to.finish()
        out = b"".join(encode_chat_chunk(c) for c in chunks)
        found = self._to.usage
        usage = found.as_chat_usage() if found is not None else dict(fallback)
        final = {"id": self._to.id, "object": "chat.completion.chunk", "created": self._to.created,
                 "model": self._to.model, "choices": [],
                 "usage": usage | cost} | extras  # fmt: skip
        return out + encode_chat_chunk(final) + CHAT_DONE

    def failure(self, error: NodeError, extras: Json) -> bytes:
        return encode_chat_chunk(error.envelope() | extras)
