"""An Anthropic Messages client on an OpenAI-compatible upstream: the request out, the answer back.

`chat_request` turns a Messages request into a chat/completions one; `messages_answer`
(messages_to_chat_answer.py) turns the chat completion into a Messages answer; `ChunksToEvents`
(messages_to_chat_stream.py) does it for streams. All three are importable from here.

What is carried, and how:
    system (string or text blocks)    one system message; Claude Code's attribution line
                                      (`x-anthropic-billing-header: …`, new on every request) is
                                      dropped: it means nothing to the model and would defeat the
                                      upstream's prefix cache
    text, image (base64, URL)         text and image_url parts
    document                          plain text -> text; base64 PDF -> a `file` part (data URL);
                                      `content` source -> its text and image parts
    tool_use / tool_result            assistant tool_calls / `tool` messages (they come first, as
                                      chat requires); images in a result follow in a user message;
                                      `is_error` prefixes the result with "Error: "
    tools (input_schema), tool_choice function tools; auto/any/tool/none -> auto/required/
                                      {function}/none; disable_parallel_tool_use ->
                                      parallel_tool_calls false
    stop_sequences, max_tokens,       stop, max_tokens (or `max_completion_tokens`, see
    temperature, top_p                ChatOptions), temperature, top_p
    top_k                             passed as an extra field (vLLM, SGLang and llama.cpp read it;
                                      dropping it would change sampling silently); ChatOptions can
                                      drop it for upstreams that refuse unknown fields
    metadata.user_id                  user
    thinking, output_config.effort    reasoning_effort: budget < 4096 low, < 16384 medium, else
                                      high; adaptive leaves it to the upstream; xhigh/max -> high
    output_config.format              response_format json_schema
    stream                            stream, with stream_options.include_usage (for the charge)

Dropped, as meaningless to the upstream: cache_control, citations, thinking and redacted_thinking
blocks of earlier turns (only Anthropic can check their signatures), context_management.
Refused with InvalidRequest (the route answers Anthropic's invalid_request_error): documents by
URL or Files API id, images by file id, server tools (web search, code execution, …),
mcp_servers, and any block type chat cannot carry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from node.dialects.errors import InvalidRequest
from node.dialects.messages_to_chat_answer import messages_answer
from node.dialects.messages_to_chat_stream import ChunksToEvents

__all__ = ["ChatOptions", "ChunksToEvents", "chat_request", "messages_answer"]

Json = dict[str, Any]
ATTRIBUTION = "x-anthropic-billing-header:"
EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


@dataclass(frozen=True)
class ChatOptions:
    top_k: bool = True  # pass `top_k` on as an extra field
    reasoning_effort: bool = True  # map `thinking` / `output_config.effort` to reasoning_effort
    max_tokens_field: str = "max_tokens"  # or "max_completion_tokens" (OpenAI's o-series)


def chat_request(body: Any, options: ChatOptions | None = None) -> Json:
    """A Messages request as a chat/completions request. Raises InvalidRequest."""
    options = options or ChatOptions()
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: a model name is required", param="model")
    if body.get("mcp_servers"):
        raise InvalidRequest("mcp_servers: MCP servers run only on Anthropic's API")
    messages = _system(body.get("system")) + _conversation(body.get("messages"))
    chat: Json = {"model": model, "messages": messages}
    chat[options.max_tokens_field] = _max_tokens(body.get("max_tokens"))
    _sampling(body, chat, options)
    _tools(body, chat)
    _reasoning(body, chat, options)
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise InvalidRequest("stop_sequences: a list of strings", param="stop_sequences")
        if stop:
            chat["stop"] = stop
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        chat["user"] = metadata["user_id"]
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def _max_tokens(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest("max_tokens: a positive integer is required", param="max_tokens")
    return value


def _sampling(body: Json, chat: Json, options: ChatOptions) -> None:
    names = ("temperature", "top_p", "top_k") if options.top_k else ("temperature", "top_p")
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidRequest(f"{name}: a number is required", param=name)
        chat[name] = value


def _reasoning(body: Json, chat: Json, options: ChatOptions) -> None:
    config = body.get("output_config")
    config = config if isinstance(config, dict) else {}
    schema_format = config.get("format")
    if isinstance(schema_format, dict) and schema_format.get("type") == "json_schema":
        schema = {"name": "output", "schema": schema_format.get("schema") or {}}
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    if not options.reasoning_effort:
        return
    effort = EFFORTS.get(str(config.get("effort")))
    thinking = body.get("thinking")
    if effort is None and isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        budget = budget if isinstance(budget, int) else 0
        effort = "low" if budget < 4096 else "medium" if budget < 16384 else "high"
    if effort is not None:
        chat["reasoning_effort"] = effort


# --- system and conversation -----------------------------------------------------------------


def _system(system: Any) -> list[Json]:
    if system is None or system == "" or system == []:
        return []
    if isinstance(system, str):
        texts = [system]
    elif isinstance(system, list):
        texts = [_text_of(block, "system") for block in system]
    else:
        raise InvalidRequest("system: a string or a list of text blocks", param="system")
    texts = [t for t in texts if t and not t.startswith(ATTRIBUTION)]
    return [{"role": "system", "content": "\n\n".join(texts)}] if texts else []


def _text_of(block: Any, where: str) -> str:
    if not isinstance(block, dict) or block.get("type") != "text":
        raise InvalidRequest(f"{where}: only text blocks are allowed here", param=where)
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequest(f"{where}: a text block needs its text", param=where)
    return text


def _conversation(messages: Any) -> list[Json]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: a non-empty list is required", param="messages")
    out: list[Json] = []
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where}: a message must be an object", param=where)
        role, content = message.get("role"), message.get("content")
        if role == "user":
            out.extend(_user_turn(content, where))
        elif role == "assistant":
            out.append(_assistant_turn(content, where))
        else:
            raise InvalidRequest(f"{where}.role: 'user' or 'assistant'", param=f"{where}.role")
    return out


def _blocks(content: Any, where: str) -> list[Json]:
    if not isinstance(content, list) or not all(isinstance(b, dict) for b in content):
        raise InvalidRequest(f"{where}.content: a string or a list of blocks", param=where)
    return content


def _user_turn(content: Any, where: str) -> list[Json]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    results: list[Json] = []
    parts: list[Json] = []
    for j, block in enumerate(_blocks(content, where)):
        at = f"{where}.content.{j}"
        if block.get("type") == "tool_result":
            message, extra = _tool_result(block, at)
            results.append(message)
            parts.extend(extra)
        else:
            parts.extend(_parts(block, at))
    if parts:
        results.append({"role": "user", "content": _joined(parts)})
    return results


def _joined(parts: list[Json]) -> str | list[Json]:
    """Text alone travels as a string (every chat server takes one); anything else as parts."""
    if all(part["type"] == "text" for part in parts):
        return "\n".join(part["text"] for part in parts)
    return parts


def _parts(block: Json, where: str) -> list[Json]:
    """The chat content parts for one user content block."""
    kind = block.get("type")
    if kind == "text":
        return [{"type": "text", "text": _text_of(block, where)}]
    if kind == "image":
        return [_image(block.get("source"), where)]
    if kind == "document":
        return _document(block, where)
    raise InvalidRequest(
        f"{where}: a '{kind}' block cannot be carried to this model's upstream", param=where
    )


def _image(source: Any, where: str) -> Json:
    source = source if isinstance(source, dict) else {}
    if source.get("type") == "base64" and isinstance(source.get("data"), str):
        url = f"data:{source.get('media_type', 'image/png')};base64,{source['data']}"
        return {"type": "image_url", "image_url": {"url": url}}
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise InvalidRequest(
        f"{where}.source: images go to this model's upstream as base64 or by URL only",
        param=where,
    )


def _document(block: Json, where: str) -> list[Json]:
    source = block.get("source")
    source = source if isinstance(source, dict) else {}
    kind, data = source.get("type"), source.get("data")
    title = block.get("title") if isinstance(block.get("title"), str) else None
    if kind == "text" and isinstance(data, str):
        return [{"type": "text", "text": f"{title}\n\n{data}" if title else data}]
    if kind == "base64" and isinstance(data, str):
        media = source.get("media_type", "application/pdf")
        file = {"filename": title or "document.pdf", "file_data": f"data:{media};base64,{data}"}
        return [{"type": "file", "file": file}]
    if kind == "content":
        inner = source.get("content")
        if isinstance(inner, str):
            return [{"type": "text", "text": inner}]
        blocks = _blocks(inner, f"{where}.source")
        return [p for j, b in enumerate(blocks) for p in _parts(b, f"{where}.source.content.{j}")]
    raise InvalidRequest(
        f"{where}.source: documents go to this model's upstream as text, base64 PDF or content "
        "blocks only (not by URL or file id)",
        param=where,
    )


def _tool_result(block: Json, where: str) -> tuple[Json, list[Json]]:
    """A `tool` message, and the parts (images) a tool message cannot hold, for a user message."""
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str):
        raise InvalidRequest(f"{where}.tool_use_id: required", param=where)
    content = block.get("content", "")
    texts: list[str] = []
    extra: list[Json] = []
    if isinstance(content, str):
        texts.append(content)
    else:
        for j, inner in enumerate(_blocks(content, where)):
            for part in _parts(inner, f"{where}.content.{j}"):
                if part["type"] == "text":
                    texts.append(part["text"])
                else:
                    extra.append(part)
    text = "\n".join(texts)
    if block.get("is_error") is True:
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": call_id, "content": text}, extra


def _assistant_turn(content: Any, where: str) -> Json:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[Json] = []
    for j, block in enumerate(_blocks(content, where)):
        kind, at = block.get("type"), f"{where}.content.{j}"
        if kind == "text":
            texts.append(_text_of(block, at))
        elif kind == "tool_use":
            calls.append(_tool_call(block, at))
        elif kind not in ("thinking", "redacted_thinking"):
            raise InvalidRequest(
                f"{at}: a '{kind}' block cannot be carried to this model's upstream", param=at
            )
    message: Json = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _tool_call(block: Json, where: str) -> Json:
    call_id, name, given = block.get("id"), block.get("name"), block.get("input", {})
    if not isinstance(call_id, str) or not isinstance(name, str) or not isinstance(given, dict):
        raise InvalidRequest(f"{where}: tool_use needs an id, a name and an input object")
    arguments = json.dumps(given, ensure_ascii=False, separators=(",", ":"))
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


# --- tools ---------------------------------------------------------------------------------------


def _tools(body: Json, chat: Json) -> None:
    tools = body.get("tools")
    if tools:
        if not isinstance(tools, list):
            raise InvalidRequest("tools: a list of tools", param="tools")
        chat["tools"] = [_function_tool(tool, f"tools.{i}") for i, tool in enumerate(tools)]
    choice = body.get("tool_choice")
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "auto":
        chat["tool_choice"] = "auto"
    elif kind == "any":
        chat["tool_choice"] = "required"
    elif kind == "none":
        chat["tool_choice"] = "none"
    elif kind == "tool" and isinstance(choice.get("name"), str):
        chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise InvalidRequest("tool_choice: auto, any, tool (with a name) or none")
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        chat["parallel_tool_calls"] = False


def _function_tool(tool: Any, where: str) -> Json:
    if not isinstance(tool, dict):
        raise InvalidRequest(f"{where}: a tool must be an object", param=where)
    kind, name, schema = tool.get("type"), tool.get("name"), tool.get("input_schema")
    if kind not in (None, "custom"):
        raise InvalidRequest(
            f"{where}: the server tool '{kind}' runs only on Anthropic's API", param=where
        )
    if not isinstance(name, str) or not isinstance(schema, dict):
        raise InvalidRequest(f"{where}: a tool needs a name and an input_schema", param=where)
    function: Json = {"name": name, "parameters": schema}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}
