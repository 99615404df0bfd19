"""`/v1/text/generations`: a prompt in, text out (Botech's simple text endpoint).

A model the upstream serves on /completions gets the request as it came. Any other is asked in
chat: the prompt becomes one user message, and the chat answer (plain or streamed) is turned
back into a text completion, `choices[].text`. Either way it is metered as the call it became.
"""

from __future__ import annotations

from typing import Any

import orjson

from node.proxy.meters import ChatMeter

COMPLETIONS_ONLY = ("prompt", "suffix", "echo", "best_of", "logprobs")


def to_chat(body: dict[str, Any]) -> dict[str, Any]:
    chat = {k: v for k, v in body.items() if k not in COMPLETIONS_ONLY}
    chat["messages"] = [{"role": "user", "content": body["prompt"]}]
    return chat


class WrappedTextMeter(ChatMeter):
    """A text generation asked in chat: metered as chat, answered as a text completion."""

    def __init__(self) -> None:
        super().__init__("chat/completions")

    def answer_out(self, answer: dict[str, Any]) -> None:
        _unwrap(answer, "message")

    def event_out(self, event: bytes) -> bytes:
        if not event.startswith(b"data: {"):
            return event
        try:
            chunk = orjson.loads(event[6:])
        except orjson.JSONDecodeError:
            return event
        if not isinstance(chunk, dict) or not chunk.get("choices"):
            return event
        _unwrap(chunk, "delta")
        return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _unwrap(answer: dict[str, Any], key: str) -> None:
    answer["object"] = "text_completion"
    choices = answer.get("choices")
    for choice in choices if isinstance(choices, list) else []:
        if not isinstance(choice, dict):
            continue
        part = choice.pop(key, None)
        content = part.get("content") if isinstance(part, dict) else None
        choice["text"] = content if isinstance(content, str) else ""
        choice.setdefault("logprobs", None)
