"""A Messages request's fields have the JSON types Anthropic documents, or a clear 400.

Only types and the fields every shape needs are checked here: which block types and tool types
a model takes is the upstream's to say (new ones appear often, and an Anthropic upstream passes
them through), and what a request may cost is node.pricing.billing's. Without this, a wrong
type reached the translation or the upstream and came back as a vaguer error, or not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from node.errors import BadRequest

ROLES = ("user", "assistant")
TOOL_CHOICES = ("auto", "any", "tool", "none")
SOURCE_FIELDS = {"base64": "data", "url": "url", "text": "data", "file": "file_id"}  # by type


def check_request(body: dict[str, Any], *, counting: bool = False) -> None:
    """Raise BadRequest naming the first field of a wrong type; `counting`: count_tokens,
    which takes no max_tokens, stream or sampling fields."""
    _messages(body.get("messages"))
    _system(body.get("system"))
    _tools(body.get("tools"), body.get("tool_choice"))
    _thinking(body.get("thinking"))
    if counting:
        return
    if not _int(body.get("max_tokens")) or body["max_tokens"] < 1:
        raise BadRequest("max_tokens: a positive integer is required", param="max_tokens")
    _optional(body, "stream", lambda v: isinstance(v, bool), "a boolean")
    _optional(body, "metadata", lambda v: isinstance(v, dict), "an object")
    for name in ("temperature", "top_p"):
        _optional(body, name, _number, "a number")
    _optional(body, "top_k", lambda v: _int(v) and v >= 0, "a non-negative integer")
    for name in ("service_tier", "inference_geo", "speed"):  # the node reads them (billing)
        _optional(body, name, lambda v: isinstance(v, str), "a string")
    _optional(
        body,
        "stop_sequences",
        lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
        "a list of strings",
    )


def _messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: a non-empty list is required", param="messages")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise BadRequest(f"{where}: an object with role user or assistant", param=where)
        content = message.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            raise BadRequest(f"{where}.content: a string or a list of blocks", param=where)
        _blocks(content, f"{where}.content")


def _blocks(blocks: list[Any], where: str) -> None:
    for i, block in enumerate(blocks):
        at = f"{where}[{i}]"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise BadRequest(f"{at}: a content block needs a string 'type'", param=at)
        kind = block["type"]
        if kind == "text" and not isinstance(block.get("text"), str):
            raise BadRequest(f"{at}.text: a string is required", param=at)
        if kind in ("image", "document"):
            _source(block.get("source"), f"{at}.source")
        if kind == "tool_use" and not isinstance(block.get("input"), dict):
            raise BadRequest(f"{at}.input: an object is required", param=at)
        if kind == "tool_result" and not isinstance(block.get("tool_use_id"), str):
            raise BadRequest(f"{at}.tool_use_id: a string is required", param=at)


def _source(source: Any, where: str) -> None:
    if not isinstance(source, dict) or not isinstance(source.get("type"), str):
        raise BadRequest(f"{where}: an object with a string 'type' is required", param=where)
    field = SOURCE_FIELDS.get(source["type"])
    if field is not None and not isinstance(source.get(field), str):
        raise BadRequest(f"{where}.{field}: a string is required", param=where)


def _system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise BadRequest("system: a string or a list of text blocks", param="system")
    _blocks(system, "system")


def _tools(tools: Any, choice: Any) -> None:
    if tools is not None:
        if not isinstance(tools, list):
            raise BadRequest("tools: a list is required", param="tools")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise BadRequest(f"tools[{i}]: an object with a string 'name'", param="tools")
            custom = tool.get("type", "custom") == "custom"
            if custom and not isinstance(tool.get("input_schema"), dict):
                raise BadRequest(f"tools[{i}].input_schema: an object is required", param="tools")
    if choice is None:
        return
    if not isinstance(choice, dict) or choice.get("type") not in TOOL_CHOICES:
        raise BadRequest(
            "tool_choice: an object with type auto, any, tool or none", param="tool_choice"
        )
    if choice["type"] == "tool" and not isinstance(choice.get("name"), str):
        raise BadRequest("tool_choice.name: a string is required", param="tool_choice")


def _thinking(thinking: Any) -> None:
    if thinking is None:
        return
    if not isinstance(thinking, dict) or not isinstance(thinking.get("type"), str):
        raise BadRequest("thinking: an object with a string 'type'", param="thinking")
    if thinking["type"] == "enabled" and not _int(thinking.get("budget_tokens")):
        raise BadRequest("thinking.budget_tokens: an integer is required", param="thinking")


def _optional(body: dict[str, Any], name: str, ok: Callable[[Any], bool], what: str) -> None:
    if name in body and body[name] is not None and not ok(body[name]):
        raise BadRequest(f"{name}: {what} is required", param=name)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
