"""OpenAI's legacy function-calling format, carried over upstreams that speak only `tools`.

    request   functions → tools, function_call → tool_choice; an assistant message's
              function_call → tool_calls, a `function` message → a `tool` message
    answer    the first tool call → message.function_call; finish_reason "tool_calls" →
              "function_call"; stream deltas the same way, chunk by chunk

A request that sends `tools` itself is left alone: it speaks the current format.
"""

from __future__ import annotations

from typing import Any

import orjson

from node.errors import BadRequest
from node.proxy.meters import ChatMeter


def uses_functions(body: dict[str, Any]) -> bool:
    return "functions" in body and "tools" not in body


def to_tools(body: dict[str, Any]) -> None:
    """Rewrite a legacy request in place into the `tools` format."""
    functions = body.pop("functions")
    if not isinstance(functions, list) or not all(
        isinstance(f, dict) and isinstance(f.get("name"), str) for f in functions
    ):
        raise BadRequest("functions must be an array of objects with a name", param="functions")
    body["tools"] = [{"type": "function", "function": f} for f in functions]
    if "function_call" in body:
        body["tool_choice"] = _tool_choice(body.pop("function_call"))
    body["messages"] = _messages(body.get("messages"))


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none"):
        return choice
    if isinstance(choice, dict) and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise BadRequest('function_call must be "auto", "none" or {"name": …}', param="function_call")


def _messages(messages: Any) -> Any:
    if not isinstance(messages, list):
        return messages
    out: list[Any] = []
    last_id = ""
    for number, message in enumerate(messages):
        if not isinstance(message, dict):
            out.append(message)
            continue
        message = dict(message)
        call = message.pop("function_call", None)
        if message.get("role") == "assistant" and isinstance(call, dict):
            last_id = f"call_legacy_{number}"
            message["tool_calls"] = [{"id": last_id, "type": "function", "function": call}]
        elif message.get("role") == "function":
            message = {"role": "tool", "tool_call_id": last_id, "content": message.get("content")}
        out.append(message)
    return out


def answer_to_legacy(answer: dict[str, Any]) -> None:
    """Rewrite a plain chat answer in place for a legacy caller."""
    choices = answer.get("choices")
    for choice in choices if isinstance(choices, list) else []:
        if isinstance(choice, dict):
            _choice(choice, "message")


def event_to_legacy(event: bytes) -> bytes:
    """One server-sent event of a chat stream, rewritten for a legacy caller."""
    if b"tool_calls" not in event:
        return event
    lines = event.rstrip(b"\n").split(b"\n")
    data = [line for line in lines if line.startswith(b"data:")]
    try:
        chunk = orjson.loads(b"\n".join(line[5:].lstrip(b" ") for line in data))
    except orjson.JSONDecodeError:
        return event
    if not isinstance(chunk, dict):
        return event
    answer_choices = chunk.get("choices")
    for choice in answer_choices if isinstance(answer_choices, list) else []:
        if isinstance(choice, dict):
            _choice(choice, "delta")
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _choice(choice: dict[str, Any], key: str) -> None:
    if choice.get("finish_reason") == "tool_calls":
        choice["finish_reason"] = "function_call"
    part = choice.get(key)
    if not isinstance(part, dict) or "tool_calls" not in part:
        return
    calls = part.pop("tool_calls")
    first = calls[0] if isinstance(calls, list) and calls else None
    if not isinstance(first, dict) or not isinstance(first.get("function"), dict):
        return
    if key == "delta" and first.get("index", 0) != 0:
        return  # the legacy format carries one call: later ones are dropped
    function = first["function"]
    part["function_call"] = {k: function[k] for k in ("name", "arguments") if k in function}


class FunctionsMeter(ChatMeter):
    """chat/completions for a legacy caller: metered as any chat, answered in its format."""

    def __init__(self) -> None:
        super().__init__("chat/completions")

    def answer_out(self, answer: dict[str, Any]) -> None:
        answer_to_legacy(answer)

    def event_out(self, event: bytes) -> bytes:
        return event_to_legacy(event)
