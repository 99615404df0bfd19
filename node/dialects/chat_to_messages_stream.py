"""An Anthropic upstream's stream events as OpenAI chat.completion.chunk dicts.

`EventsToChunks` is fed the upstream's events (dicts with their `type`, as
`node.dialects.sse.event_data` reads them) and returns, for each, the chunks it makes at once:

    message_start          the first chunk: `{"role": "assistant", "content": ""}`
    text block / delta     `content` pieces
    thinking delta         `reasoning_content` pieces
    tool_use block start   a tool call delta with index, id, type and name (arguments "")
    input_json_delta       a tool call delta with the same index and the next arguments piece
    message_delta          the finish_reason chunk (its usage is kept: counts are cumulative)
    message_stop           the usage chunk (`choices: []`), if the client asked for usage
    error                  `{"error": {...}}`, as OpenAI-compatible servers report a failure
                           mid-stream (the OpenAI SDK raises on it); the stream ends
    ping, signature, …     nothing

Every chunk carries one id (`chatcmpl-` + the message id), `created` and the client's model.
When the upstream ends without message_stop, `finish()` ends the stream cleanly. Usage keeps
Anthropic's four counts: prompt_tokens is their input sum, cached_tokens the cache reads, and
cache_creation_input_tokens stays visible for pricing.
"""

from __future__ import annotations

import time
from typing import Any

from node.dialects.chat_to_messages_answer import chat_id, finish_reason
from node.dialects.usage import AnthropicUsage, merge_stream_usage, read_anthropic_usage

Json = dict[str, Any]


class EventsToChunks:
    def __init__(self, *, model: str, include_usage: bool, created: int | None = None) -> None:
        """`model`: the name the client asked for; `include_usage`: the client's
        stream_options.include_usage (the usage is read either way: see `usage`)."""
        self.model = model
        self.include_usage = include_usage
        self.created = int(time.time()) if created is None else created
        self.ended = False
        self.id = chat_id(None)
        self._raw_usage: Json = {}
        self._started = False
        self._finished = False
        self._final = False  # message_delta has reported the output count
        self._tools: dict[int, int] = {}  # content block index -> tool call index

    @property
    def usage(self) -> AnthropicUsage | None:
        """The upstream's final usage, once message_delta has given the output count; None
        before (a stream cut short: estimate the output) or when a needed count is missing."""
        return read_anthropic_usage(self._raw_usage) if self._final else None

    @property
    def partial_usage(self) -> AnthropicUsage | None:
        """The counts reported so far: after message_start alone, the input and cache counts
        are real but output_tokens is only the count at the start."""
        return read_anthropic_usage(self._raw_usage)

    def feed(self, event: Any) -> list[Json]:
        """The chunks one upstream event makes, in order."""
        if self.ended or not isinstance(event, dict):
            return []
        kind = event.get("type")
        if kind == "message_start":
            return self._start(event.get("message"))
        if kind == "content_block_start":
            return self._start() + self._block_start(event)
        if kind == "content_block_delta":
            return self._start() + self._delta(event)
        if kind == "message_delta":
            usage = event.get("usage")
            self._raw_usage = merge_stream_usage(self._raw_usage, usage)
            self._final = self._final or (isinstance(usage, dict) and "output_tokens" in usage)
            delta = event.get("delta")
            reason = delta.get("stop_reason") if isinstance(delta, dict) else None
            return self._start() + self._finish_chunk(finish_reason(reason))
        if kind == "message_stop":
            return self.finish()
        if kind == "error":
            return self._error(event.get("error"))
        return []  # ping, content_block_stop, and event types added later

    def finish(self) -> list[Json]:
        """End the stream: the finish chunk if none was sent, and the usage chunk if asked."""
        if self.ended:
            return []
        chunks = self._start() + self._finish_chunk("stop")
        self.ended = True
        usage = self.usage
        if self.include_usage and usage is not None:
            chunk = self._chunk({})
            chunk["choices"] = []
            chunk["usage"] = usage.as_chat_usage()
            chunks.append(chunk)
        return chunks

    # --- the events ---------------------------------------------------------------------

    def _start(self, message: Any = None) -> list[Json]:
        if self._started:
            return []
        self._started = True
        if isinstance(message, dict):
            self.id = chat_id(message.get("id"))
            self._raw_usage = merge_stream_usage(self._raw_usage, message.get("usage"))
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, event: Json) -> list[Json]:
        block = event.get("content_block")
        block = block if isinstance(block, dict) else {}
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str) and block["text"]:
            return [self._chunk({"content": block["text"]})]
        if kind != "tool_use" or not isinstance(event.get("index"), int):
            return []
        number = self._tools[event["index"]] = len(self._tools)
        function = {"name": str(block.get("name") or ""), "arguments": ""}
        call = {"index": number, "id": str(block.get("id") or ""), "type": "function",
                "function": function}  # fmt: skip
        return [self._chunk({"tool_calls": [call]})]

    def _delta(self, event: Json) -> list[Json]:
        delta = event.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        kind = delta.get("type")
        if kind == "text_delta" and isinstance(delta.get("text"), str):
            return [self._chunk({"content": delta["text"]})]
        if kind == "thinking_delta" and isinstance(delta.get("thinking"), str):
            return [self._chunk({"reasoning_content": delta["thinking"]})]
        piece = delta.get("partial_json")
        index = event.get("index")
        number = self._tools.get(index) if isinstance(index, int) else None
        if kind == "input_json_delta" and isinstance(piece, str) and piece and number is not None:
            call = {"index": number, "function": {"arguments": piece}}
            return [self._chunk({"tool_calls": [call]})]
        return []

    def _finish_chunk(self, reason: str) -> list[Json]:
        if self._finished:
            return []
        self._finished = True
        return [self._chunk({}, reason)]

    def error(self, kind: str, message: str) -> list[Json]:
        """End the stream with an error chunk, as OpenAI-compatible servers send one."""
        if self.ended:
            return []
        self.ended = True
        return [{"error": {"message": message, "type": kind, "param": None, "code": kind}}]

    def _error(self, error: Any) -> list[Json]:
        """The upstream's error type is kept (overloaded_error tells a client to retry); its
        message is not passed on, as it may describe the upstream's account."""
        kind = error.get("type") if isinstance(error, dict) else None
        kind = kind if isinstance(kind, str) else "api_error"
        return self.error(kind, f"the upstream failed during the stream ({kind})")

    def _chunk(self, delta: Json, finish: str | None = None) -> Json:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
