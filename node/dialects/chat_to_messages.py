"""An OpenAI chat client on an Anthropic upstream: the request out, the answer back.

`messages_request` turns a chat/completions request into a Messages one; `chat_answer` turns the
Messages answer into a chat completion; `EventsToChunks` (chat_to_messages_stream.py) does it for
streams.

What is carried, and how:
    system / developer messages      joined into `system` (Anthropic has no system turns)
    user text, image_url             text blocks; image blocks, base64 from a data: URL or by URL
    file (file_data, a data: URL)    a document block (base64)
    assistant content, tool_calls    text blocks, tool_use blocks (arguments parsed: they must be
                                     a JSON object)
    tool messages                    tool_result blocks in a user turn; consecutive turns of one
                                     role are merged, as Anthropic wants them alternating
    max_completion_tokens/max_tokens max_tokens, which Anthropic requires: the caller gives the
                                     default for requests without one
    stop, temperature, top_p, top_k  stop_sequences, temperature (capped at 1.0, Anthropic's
                                     maximum, rather than refused), top_p, top_k
    tools, tool_choice               tools with input_schema; auto/required/none/{function} ->
                                     auto/any/none/tool; parallel_tool_calls false ->
                                     disable_parallel_tool_use
    reasoning_effort                 thinking with a budget (low 1024, medium 4096, high 16384
                                     tokens, kept under max_tokens); Anthropic refuses sampling
                                     settings with thinking, so temperature/top_p/top_k are
                                     dropped then
    response_format json_schema      output_config.format
    user                             metadata.user_id
    stream                           stream (usage always comes: Anthropic reports it in events)

Refused with InvalidRequest: n > 1, logprobs, audio input or output, file ids, the legacy
`functions`/`function_call`, response_format json_object (no schema to give), and any content
part type Anthropic cannot take. Dropped: seed, penalties, logit_bias, store, service_tier.
"""

from __future__ import annotations

import json
from typing import Any

from node.dialects.chat_to_messages_answer import chat_answer
from node.dialects.chat_to_messages_stream import EventsToChunks
from node.dialects.errors import InvalidRequest

__all__ = ["EventsToChunks", "chat_answer", "messages_request"]

Json = dict[str, Any]
BUDGETS = {"low": 1024, "medium": 4096, "high": 16384, "xhigh": 32768}
SAMPLING = ("temperature", "top_p", "top_k")


def messages_request(body: Any, *, default_max_tokens: int) -> Json:
    """A chat/completions request as a Messages request. Raises InvalidRequest."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: a model name is required", param="model")
    _refuse_uncarried(body)
    system, turns = _conversation(body.get("messages"))
    out: Json = {
        "model": model,
        "messages": turns,
        "max_tokens": _max_tokens(body, default_max_tokens),
    }
    if system:
        out["system"] = system
    _sampling(body, out)
    _tools(body, out)
    _output(body, out)
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        out["stop_sequences"] = stop
    elif stop is not None:
        raise InvalidRequest("stop: a string or a list of strings", param="stop")
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    if body.get("stream") is True:
        out["stream"] = True
    return out


def _refuse_uncarried(body: Json) -> None:
    n = body.get("n")
    if n is not None and n != 1:
        raise InvalidRequest("n: this model's upstream answers one choice only", param="n")
    if body.get("logprobs") or body.get("top_logprobs"):
        raise InvalidRequest("logprobs: this model's upstream gives no logprobs", param="logprobs")
    if body.get("functions") or body.get("function_call"):
        raise InvalidRequest("functions: use tools and tool_choice", param="functions")
    if "audio" in (body.get("modalities") or []) or body.get("audio"):
        raise InvalidRequest("audio: this model's upstream gives no audio", param="modalities")


def _max_tokens(body: Json, default: int) -> int:
    value = body.get("max_completion_tokens")
    value = body.get("max_tokens") if value is None else value
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest("max_tokens: a positive integer", param="max_tokens")
    return value


def _sampling(body: Json, out: Json) -> None:
    for name in SAMPLING:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidRequest(f"{name}: a number is required", param=name)
        out[name] = min(value, 1.0) if name == "temperature" else value


def _output(body: Json, out: Json) -> None:
    effort = body.get("reasoning_effort")
    budget = BUDGETS.get(str(effort))
    if budget is not None and out["max_tokens"] > 1024:
        out["thinking"] = {"type": "enabled", "budget_tokens": min(budget, out["max_tokens"] - 1)}
        for name in SAMPLING:
            out.pop(name, None)
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_schema":
        spec = response_format.get("json_schema") if isinstance(response_format, dict) else None
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise InvalidRequest("response_format.json_schema.schema: required")
        out["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    elif kind not in (None, "text"):
        raise InvalidRequest(
            f"response_format: '{kind}' cannot be carried to this model's upstream; "
            "use json_schema with a schema",
            param="response_format",
        )


# --- the conversation ----------------------------------------------------------------------------


def _conversation(messages: Any) -> tuple[str, list[Json]]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: a non-empty list is required", param="messages")
    system: list[str] = []
    turns: list[Json] = []
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where}: a message must be an object", param=where)
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_plain_text(message.get("content"), where))
            continue
        if role == "user":
            turn = {"role": "user", "content": _user_blocks(message.get("content"), where)}
        elif role == "assistant":
            turn = {"role": "assistant", "content": _assistant_blocks(message, where)}
        elif role == "tool":
            turn = {"role": "user", "content": [_tool_result(message, where)]}
        else:
            raise InvalidRequest(f"{where}.role: '{role}' is not a chat role", param=where)
        if turns and turns[-1]["role"] == turn["role"]:
            turns[-1]["content"].extend(turn["content"])
        else:
            turns.append(turn)
    return "\n\n".join(t for t in system if t), turns


def _plain_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_part_text(part, where) for part in content)
    if content is None:
        return ""
    raise InvalidRequest(f"{where}.content: a string or a list of text parts", param=where)


def _part_text(part: Any, where: str) -> str:
    if isinstance(part, dict) and part.get("type") in ("text", "refusal"):
        text = part.get("text", part.get("refusal"))
        if isinstance(text, str):
            return text
    raise InvalidRequest(f"{where}.content: only text parts are allowed here", param=where)


def _user_blocks(content: Any, where: str) -> list[Json]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content: a string or a list of parts", param=where)
    blocks: list[Json] = []
    for j, part in enumerate(content):
        at = f"{where}.content.{j}"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text = _part_text(part, at)
            blocks.extend([{"type": "text", "text": text}] if text else [])
        elif kind == "image_url":
            blocks.append(_image(part.get("image_url"), at))
        elif kind == "file":
            blocks.append(_document(part.get("file"), at))
        else:
            raise InvalidRequest(
                f"{at}: a '{kind}' part cannot be carried to this model's upstream", param=at
            )
    return blocks


def _data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a `data:<type>;base64,<data>` URL."""
    head, comma, data = url.partition(",")
    if not url.startswith("data:") or not comma or not head.endswith(";base64"):
        return None
    return head[5:].removesuffix(";base64"), data


def _image(image: Any, where: str) -> Json:
    url = image.get("url") if isinstance(image, dict) else image
    if isinstance(url, str):
        inline = _data_url(url)
        if inline is not None:
            media, data = inline
            return {
                "type": "image",
                "source": {"type": "base64", "media_type": media, "data": data},
            }
        if url.startswith(("https://", "http://")):
            return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequest(f"{where}.image_url: a data: URL (base64) or an http(s) URL", param=where)


def _document(file: Any, where: str) -> Json:
    data = file.get("file_data") if isinstance(file, dict) else None
    inline = _data_url(data) if isinstance(data, str) else None
    if inline is None:
        raise InvalidRequest(
            f"{where}.file: give file_data as a base64 data: URL (file ids mean nothing to "
            "this model's upstream)",
            param=where,
        )
    media, payload = inline
    block: Json = {
        "type": "document",
        "source": {"type": "base64", "media_type": media, "data": payload},
    }
    if isinstance(file, dict) and isinstance(file.get("filename"), str):
        block["title"] = file["filename"]
    return block


def _assistant_blocks(message: Json, where: str) -> list[Json]:
    text = _plain_text(message.get("content"), where)
    blocks: list[Json] = [{"type": "text", "text": text}] if text else []
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise InvalidRequest(f"{where}.tool_calls: a list", param=where)
    for j, call in enumerate(calls):
        blocks.append(_tool_use(call, f"{where}.tool_calls.{j}"))
    return blocks


def _tool_use(call: Any, where: str) -> Json:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(call.get("id"), str):
        raise InvalidRequest(f"{where}: a tool call needs an id and a function", param=where)
    name, arguments = function.get("name"), function.get("arguments") or "{}"
    try:
        given = json.loads(arguments) if isinstance(arguments, str) else None
    except ValueError:
        given = None
    if not isinstance(name, str) or not isinstance(given, dict):
        raise InvalidRequest(
            f"{where}.function: a name, and arguments as a JSON object", param=where
        )
    return {"type": "tool_use", "id": call["id"], "name": name, "input": given}


def _tool_result(message: Json, where: str) -> Json:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str):
        raise InvalidRequest(f"{where}.tool_call_id: required", param=where)
    return {"type": "tool_result", "tool_use_id": call_id,
            "content": _plain_text(message.get("content"), where)}  # fmt: skip


# --- tools ---------------------------------------------------------------------------------------


def _tools(body: Json, out: Json) -> None:
    tools = body.get("tools")
    if tools:
        if not isinstance(tools, list):
            raise InvalidRequest("tools: a list of tools", param="tools")
        out["tools"] = [_tool(tool, f"tools.{i}") for i, tool in enumerate(tools)]
    choice = body.get("tool_choice")
    chosen: Json | None = None
    if choice in ("auto", "none"):
        chosen = {"type": choice}
    elif choice == "required":
        chosen = {"type": "any"}
    elif isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str):
            raise InvalidRequest("tool_choice.function.name: required", param="tool_choice")
        chosen = {"type": "tool", "name": name}
    elif choice is not None:
        raise InvalidRequest("tool_choice: auto, required, none or a function", param="tool_choice")
    if body.get("parallel_tool_calls") is False and out.get("tools"):
        chosen = chosen or {"type": "auto"}
        if chosen["type"] != "none":
            chosen["disable_parallel_tool_use"] = True
    if chosen is not None:
        out["tool_choice"] = chosen


def _tool(tool: Any, where: str) -> Json:
    function = tool.get("function") if isinstance(tool, dict) else None
    if (
        not isinstance(tool, dict)
        or tool.get("type") != "function"
        or not isinstance(function, dict)
    ):
        raise InvalidRequest(f"{where}: only function tools can be carried", param=where)
    name = function.get("name")
    if not isinstance(name, str):
        raise InvalidRequest(f"{where}.function.name: required", param=where)
    schema = function.get("parameters")
    out: Json = {
        "name": name,
        "input_schema": schema
        if isinstance(schema, dict)
        else {"type": "object", "properties": {}},
    }
    if isinstance(function.get("description"), str):
        out["description"] = function["description"]
    return out
