"""A chat completion from an OpenAI-compatible upstream as an Anthropic Messages answer.

Content: the upstream's reasoning (`reasoning_content`, or `reasoning`) becomes a thinking block
with an empty signature (only Anthropic signs thinking; the signature is dropped again when the
client sends the block back), the text a text block, each tool call a tool_use block whose
`input` is the parsed arguments. Arguments that are not a JSON object cannot be a tool_use input:
UnreadableAnswer (the route answers api_error; the call is still charged from its usage).

Stop reasons: stop -> end_turn (stop_sequence when the upstream says which stop string it met:
vLLM's `stop_reason`), length -> max_tokens, tool_calls -> tool_use, content_filter -> refusal.
Usage: cached prompt tokens are cache reads, the rest of the prompt is input (usage.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from node.dialects.errors import UnreadableAnswer
from node.dialects.usage import AnthropicUsage, read_chat_usage

Json = dict[str, Any]
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def messages_answer(
    answer: Any, *, model: str | None = None, stop_sequences: Sequence[str] = ()
) -> Json:
    """The Messages answer for a chat completion. `model` is the name the client asked for;
    `stop_sequences` the request's, to tell which one was met. Raises UnreadableAnswer."""
    choice = _first_choice(answer)
    message = choice.get("message")
    if not isinstance(message, dict):
        raise UnreadableAnswer("the upstream's answer has no message")
    content = _content(message)
    used_tools = any(block["type"] == "tool_use" for block in content)
    stop_reason, stop_sequence = stop_reason_of(choice, stop_sequences, used_tools)
    usage = read_chat_usage(answer.get("usage")) or AnthropicUsage(0, 0)
    return {
        "id": message_id(answer.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model or str(answer.get("model") or ""),
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage.as_messages_usage(),
    }


def _first_choice(answer: Any) -> Json:
    choices = answer.get("choices") if isinstance(answer, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UnreadableAnswer("the upstream's answer has no choices")
    choice: Json = choices[0]
    return choice


def _content(message: Json) -> list[Json]:
    content: list[Json] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = _text(message.get("content")) or _text(message.get("refusal"))
    if text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls")
    for i, call in enumerate(calls if isinstance(calls, list) else []):
        content.append(_tool_use(call, i))
    return content


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content parts, as a few servers answer
        return "".join(
            p["text"] for p in value if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def _tool_use(call: Any, i: int) -> Json:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise UnreadableAnswer("the upstream's tool call has no function name")
    arguments = function.get("arguments") or "{}"
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise UnreadableAnswer("the upstream's tool call arguments are not a JSON object")
    call_id = call.get("id") if isinstance(call.get("id"), str) else f"toolu_{i}"
    return {"type": "tool_use", "id": call_id, "name": function["name"], "input": parsed}


def stop_reason_of(
    choice: Json, stop_sequences: Sequence[str], used_tools: bool
) -> tuple[str, str | None]:
    """Anthropic's stop_reason and stop_sequence for a chat choice's finish_reason."""
    finish = choice.get("finish_reason")
    matched = choice.get("stop_reason")  # vLLM: the stop string met (or a token id)
    if finish == "stop" and isinstance(matched, str) and matched in stop_sequences:
        return "stop_sequence", matched
    if used_tools and finish in (None, "stop"):  # some servers end tool calls with "stop"
        return "tool_use", None
    return STOP_REASONS.get(str(finish), "end_turn"), None


def message_id(chat_id: Any) -> str:
    """A Messages id (`msg_…`) from the upstream's chat id, or a fresh one."""
    if isinstance(chat_id, str) and chat_id:
        return "msg_" + chat_id.removeprefix("chatcmpl-")
    return "msg_" + uuid.uuid4().hex
