"""A chat/completions stream from an OpenAI-compatible upstream as Anthropic's stream events.

`ChunksToEvents` is fed the upstream's chunk dicts one by one and returns, for each, the events
it can already emit: nothing is held back for a later chunk. A chunk's text, reasoning or tool
call arguments leave with that chunk:

    first chunk       message_start (or earlier: `start()`, when the upstream's headers came)
    reasoning         content_block_start thinking, thinking_delta …
    content           content_block_start text, text_delta …
    tool_calls        one tool_use block per tool call index: content_block_start with id and
                      name, then input_json_delta with each piece of arguments as it comes
    finish_reason     content_block_stop of the open block
    usage chunk       message_delta (stop_reason, stop_sequence, cumulative usage), message_stop

A new kind of content closes the open block (content_block_stop) before its own starts. When
the upstream ends without its usage chunk, or without finishing at all, `finish()` ends the
stream cleanly; `error()` ends it with Anthropic's `error` event instead. Events are dicts with
their `type`; `node.dialects.sse.encode_anthropic_event` writes one as SSE bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from node.dialects.messages_to_chat_answer import message_id, stop_reason_of
from node.dialects.usage import AnthropicUsage, read_chat_usage

Json = dict[str, Any]


class ChunksToEvents:
    def __init__(
        self,
        *,
        model: str,
        message_id: str | None = None,
        stop_sequences: Sequence[str] = (),
        input_tokens: int = 0,
    ) -> None:
        """`model`: the name the client asked for; `input_tokens`: the prompt estimate shown in
        message_start (the upstream's count comes in message_delta)."""
        self.model = model
        self.usage: AnthropicUsage | None = None  # the upstream's, once it has reported
        self.ended = False
        self._id = message_id
        self._stops = stop_sequences
        self._input_estimate = input_tokens
        self._started = False
        self._next_block = 0
        self._open: int | None = None  # index of the open content block
        self._open_kind = ""
        self._tool_blocks: dict[int, int] = {}  # chat tool call index -> block index
        self._choice: Json | None = None  # the choice that carried finish_reason

    # --- the public steps ---------------------------------------------------------------

    def start(self, chat_id: str | None = None) -> list[Json]:
        """message_start, once. Called by `feed` for the first chunk if not before."""
        if self._started or self.ended:
            return []
        self._started = True
        self._id = self._id or message_id(chat_id)
        usage = {"input_tokens": self._input_estimate, "output_tokens": 0}
        message: Json = {"id": self._id, "type": "message", "role": "assistant",
                         "model": self.model, "content": [], "stop_reason": None,
                         "stop_sequence": None, "usage": usage}  # fmt: skip
        return [{"type": "message_start", "message": message}]

    def feed(self, chunk: Any) -> list[Json]:
        """The events one upstream chunk makes, in order."""
        if self.ended or not isinstance(chunk, dict):
            return []
        events = self.start(chunk.get("id") if isinstance(chunk.get("id"), str) else None)
        if isinstance(chunk.get("error"), dict):
            return events + self.error("api_error", "the upstream failed during the stream")
        usage = read_chat_usage(chunk.get("usage")) if chunk.get("usage") else None
        self.usage = usage or self.usage
        choices = chunk.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        if isinstance(choice, dict):
            events += self._choice_events(choice)
        elif self._choice is not None and usage is not None:  # the usage chunk, after finishing
            events += self.finish()
        return events

    def finish(self, usage: AnthropicUsage | None = None) -> list[Json]:
        """End the stream cleanly: close the open block, message_delta, message_stop. `usage`
        (the route's estimate) stands in when the upstream reported none."""
        if self.ended:
            return []
        events = self.start() + self._close_block()
        self.ended = True
        final = self.usage or usage or AnthropicUsage(self._input_estimate, 0)
        reason, sequence = stop_reason_of(self._choice or {}, self._stops, bool(self._tool_blocks))
        delta = {"stop_reason": reason, "stop_sequence": sequence}
        events.append({"type": "message_delta", "delta": delta, "usage": final.as_messages_usage()})
        events.append({"type": "message_stop"})
        return events

    def error(self, kind: str, message: str) -> list[Json]:
        """End the stream with Anthropic's `error` event (kind: api_error, overloaded_error, …)."""
        if self.ended:
            return []
        self.ended = True
        return [{"type": "error", "error": {"type": kind, "message": message}}]

    # --- one choice ---------------------------------------------------------------------

    def _choice_events(self, choice: Json) -> list[Json]:
        delta = choice.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        events: list[Json] = []
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            events += self._piece("thinking", {"type": "thinking_delta", "thinking": reasoning})
        text = delta.get("content")
        if isinstance(text, str) and text:
            events += self._piece("text", {"type": "text_delta", "text": text})
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else []:
            if isinstance(call, dict):
                events += self._tool_piece(call)
        if choice.get("finish_reason") is not None:
            self._choice = choice
            events += self._close_block()
        return events

    def _piece(self, kind: str, delta: Json) -> list[Json]:
        """A text or thinking delta, opening its block first if another kind is open."""
        events: list[Json] = []
        if self._open is None or self._open_kind != kind:
            empty = {"type": "text", "text": ""} if kind == "text" else {
                "type": "thinking", "thinking": "", "signature": ""}  # fmt: skip
            events += self._open_block(kind, empty)
        events.append({"type": "content_block_delta", "index": self._open, "delta": delta})
        return events

    def _tool_piece(self, call: Json) -> list[Json]:
        given = call.get("index")
        index = given if isinstance(given, int) else 0
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        events: list[Json] = []
        block = self._tool_blocks.get(index)
        if block is None:
            call_id = call.get("id") if isinstance(call.get("id"), str) else None
            name = str(function.get("name") or "")
            tool_id = call_id or f"toolu_{self._id}_{index}"
            tool: Json = {"type": "tool_use", "id": tool_id, "name": name, "input": {}}
            events += self._open_block("tool_use", tool)
            block = self._tool_blocks[index] = self._next_block - 1
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            # A piece for a tool block already closed (calls interleaved) still names its own
            # index: the client's accumulator appends it to the right block.
            piece = {"type": "input_json_delta", "partial_json": arguments}
            events.append({"type": "content_block_delta", "index": block, "delta": piece})
        return events

    def _open_block(self, kind: str, block: Json) -> list[Json]:
        events = self._close_block()
        self._open, self._open_kind = self._next_block, kind
        self._next_block += 1
        events.append({"type": "content_block_start", "index": self._open, "content_block": block})
        return events

    def _close_block(self) -> list[Json]:
        if self._open is None:
            return []
        index, self._open, self._open_kind = self._open, None, ""
        return [{"type": "content_block_stop", "index": index}]
