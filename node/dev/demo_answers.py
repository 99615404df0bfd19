"""What the demo upstream answers, in OpenAI's shapes: canned text, tool calls, embeddings.

NOT A REAL LLM. Text is a fixed sentence echoing the start of the last message; a request with
`tools` gets a call of one of them (arguments made from its JSON schema) until a tool's result
is in the conversation, then a sentence quoting that result; an embedding is a unit vector
derived from the text's hash. Tokens are counted at ~4 characters each, one word of the answer
being one completion token, so the node charges real, if tiny, amounts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import secrets
import struct
from typing import Any

ANSWER = (
    "Hello from nutgate's demo upstream. This is a canned answer, not a real LLM: "
    "your ecash paid for it all the same. You said: "
)
TOOL_ANSWER = "The demo upstream called your tool, which answered: "
ECHO_CHARS = 60
EMBEDDING_DIMENSIONS = 16
DEFAULT_LIMIT = 256


def tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def answer_words(prompt_text: str, limit: int, opening: str = ANSWER) -> list[str]:
    """The canned sentence plus an echo, cut to `limit` words (one word ~ one token here)."""
    echo = " ".join(prompt_text.split())[:ECHO_CHARS] or "(nothing)"
    words = (opening + f"“{echo}”").split(" ")[: max(1, limit)]
    return [w + " " for w in words[:-1]] + words[-1:]


def limit(body: dict[str, Any], *names: str) -> int:
    for name in names or ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return DEFAULT_LIMIT


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text") or "") for p in content if isinstance(p, dict) and "text" in p
        )
    return ""


def chat_prompt(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(all prompt text, the last message) of a chat request."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    everything = "".join(text_of(m.get("content")) for m in messages)
    everything += json.dumps(body.get("tools") or [])
    return everything, messages[-1] if messages else {}


def tool_to_call(body: dict[str, Any], last: dict[str, Any]) -> dict[str, Any] | None:
    """The function tool to call, or None: no tools, tool_choice "none", or a tool answered."""
    tools: list[dict[str, Any]] = [
        t["function"]
        for t in body.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("function"), dict)
    ]
    choice = body.get("tool_choice", "auto")
    if not tools or choice == "none" or last.get("role") == "tool":
        return None
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        return next((t for t in tools if t.get("name") == wanted), tools[0])
    return tools[0]


def arguments_for(function: dict[str, Any], said: str) -> str:
    """Arguments matching the function's JSON schema: each required property, by its type."""
    schema = function.get("parameters") or {}
    properties = schema.get("properties") or {}
    values = {"number": 1, "integer": 1, "boolean": True, "array": [], "object": {}}
    echo = " ".join(said.split())[:ECHO_CHARS] or "demo"
    arguments = {}
    for name in schema.get("required") or list(properties)[:1]:
        spec = properties.get(name) or {}
        if isinstance(spec.get("enum"), list) and spec["enum"]:
            arguments[name] = spec["enum"][0]
        else:
            arguments[name] = values.get(str(spec.get("type")), echo)
    return json.dumps(arguments)


def tool_call(function: dict[str, Any], said: str) -> dict[str, Any]:
    return {
        "id": new_id("call_demo"),
        "type": "function",
        "function": {
            "name": str(function.get("name", "")),
            "arguments": arguments_for(function, said),
        },
    }


def usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


# --- embeddings -----------------------------------------------------------------------------


def embedding(text: str, dimensions: int) -> list[float]:
    """A unit vector from the text's hash: the same text, the same vector."""
    digest = b""
    counter = 0
    while len(digest) < dimensions:
        digest += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    raw = [b / 255.0 - 0.5 for b in digest[:dimensions]]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw]


def embeddings(body: dict[str, Any]) -> dict[str, Any]:
    given = body.get("input")
    inputs = given if isinstance(given, list) else [given]
    texts = [x if isinstance(x, str) else json.dumps(x) for x in inputs]
    dims = body.get("dimensions")
    dims = dims if isinstance(dims, int) and 0 < dims <= 4096 else EMBEDDING_DIMENSIONS
    data = []
    for index, text in enumerate(texts):
        vector: Any = embedding(text, dims)
        if body.get("encoding_format") == "base64":
            vector = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    prompt = sum(tokens(t) for t in texts)
    return {
        "object": "list",
        "data": data,
        "model": str(body.get("model", "demo")),
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }


# --- responses ------------------------------------------------------------------------------


def responses_prompt(body: dict[str, Any]) -> tuple[str, str]:
    """(all prompt text, the last input's text) of a Responses request."""
    given = body.get("input")
    items = given if isinstance(given, list) else [{"content": given}]
    texts = [text_of(i.get("content")) for i in items if isinstance(i, dict)]
    everything = str(body.get("instructions") or "") + "".join(texts)
    return everything, texts[-1] if texts else ""


def response(
    body: dict[str, Any], rid: str, mid: str, text: str | None, use: Any
) -> dict[str, Any]:
    """A Responses object: in progress (text None) or completed with one message."""
    output = []
    if text is not None:
        part = {"type": "output_text", "text": text, "annotations": []}
        message = {"type": "message", "id": mid, "status": "completed", "role": "assistant"}
        output.append(message | {"content": [part]})
    return {
        "id": rid,
        "object": "response",
        "created_at": 0,
        "status": "in_progress" if text is None else "completed",
        "model": str(body.get("model", "demo")),
        "output": output,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "text": {"format": {"type": "text"}},
        "usage": use,
    }


def responses_usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }
