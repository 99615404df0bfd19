"""An Anthropic Messages answer as an OpenAI chat completion.

Text blocks are joined into `content`, tool_use blocks become `tool_calls` (the input written
back as a JSON string), thinking becomes `reasoning_content` (the field vLLM and DeepSeek use);
redacted thinking and server-tool blocks are left out. Stop reasons: end_turn, stop_sequence,
pause_turn -> stop; max_tokens, model_context_window_exceeded -> length; tool_use -> tool_calls;
refusal -> content_filter. Usage: the four Anthropic counts as OpenAI's (usage.py), the cache
write count kept visible.
"""

from __future__ import annotations

import json
import time
from typing import Any

from node.dialects.errors import UnreadableAnswer
from node.dialects.usage import read_anthropic_usage

Json = dict[str, Any]
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def chat_answer(answer: Any, *, model: str | None = None, created: int | None = None) -> Json:
    """The chat completion for a Messages answer. `model`: the name the client asked for.
    Raises UnreadableAnswer."""
    if not isinstance(answer, dict) or not isinstance(answer.get("content"), list):
        raise UnreadableAnswer("the upstream's answer has no content")
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[Json] = []
    for block in answer["content"]:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thinking.append(block["thinking"])
        elif kind == "tool_use":
            calls.append(tool_call(block))
    message: Json = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    finish = finish_reason(answer.get("stop_reason"))
    result: Json = {
        "id": chat_id(answer.get("id")),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model or str(answer.get("model") or ""),
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
    }
    usage = read_anthropic_usage(answer.get("usage"))
    if usage is not None:
        result["usage"] = usage.as_chat_usage()
    return result


def tool_call(block: Json) -> Json:
    """A chat tool call for a complete tool_use block."""
    name, given = block.get("name"), block.get("input", {})
    if not isinstance(name, str) or not isinstance(block.get("id"), str):
        raise UnreadableAnswer("the upstream's tool_use block has no id or name")
    arguments = json.dumps(given if isinstance(given, dict) else {}, ensure_ascii=False)
    function = {"name": name, "arguments": arguments}
    return {"id": block["id"], "type": "function", "function": function}


def finish_reason(stop_reason: Any) -> str:
    return FINISH_REASONS.get(str(stop_reason), "stop")


def chat_id(message_id: Any) -> str:
    """A chat id (`chatcmpl-…`) from the Messages id."""
    text = message_id if isinstance(message_id, str) and message_id else "unknown"
    return "chatcmpl-" + text.removeprefix("msg_")
