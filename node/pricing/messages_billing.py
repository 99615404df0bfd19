"""What Anthropic's Messages bill beyond the text's tokens, and how the node bounds it.

Refused: tools and MCP servers that run upstream, compaction, a dearer tier, geography or
speed; rewritten: prompt-cache writes to what the price covers, a missing tier to the one the
price holds for; told: whether the content's bytes bound its tokens (images, documents and
other blocks are bounded by the context). The table in docs/billing.md lists each field.
"""

from __future__ import annotations

from typing import Any

import orjson

from node.pricing.billing import Shape, refused, tools_prompt
from node.settings.catalogue import UpstreamSection

# Messages content blocks whose tokens are their text's; images, documents, redacted thinking
# and search results are not in the bytes (bounded by the context).
MESSAGES_TEXT_TYPES = frozenset({"text", "tool_use", "tool_result", "thinking"})
MESSAGES_TIERS = frozenset({"standard_only"})  # "auto" may bill the operator's priority tier
# Fields whose other values bill at a multiple of the listed price: US-only inference (1.1x),
# fast mode (several times the price); only the value billed at the listed price goes on.
MESSAGES_AT_LIST_PRICE = {"inference_geo": "global", "speed": "standard"}
MESSAGES_CLEARING_EDITS = ("clear_tool_uses_", "clear_thinking_")  # context edits that only cut


# The client's own JSON (schemas, a tool call's input): a cache_control key there is data.
OPAQUE = frozenset({"input_schema", "input", "schema", "input_examples", "metadata"})
SKIPPED = OPAQUE | {"cache_control"}  # not content: the whole request's mark is each model's own


class Readings:
    """The walks over one request's content, done once for all the models it names: they
    share it (node.routes.paid copies bodies shallowly), and ten megabytes walked per model
    would be unpaid work. Content: the body's top-level lists and objects, by identity."""

    def __init__(self) -> None:
        self._content: list[Any] = []
        self._bounded: bool | None = None
        self._limited: set[bool] = set()  # the cache-write rewrites done (priced or not)

    def _same(self, body: dict[str, Any]) -> None:
        content = [v for k, v in body.items() if isinstance(v, dict | list) and k not in SKIPPED]
        if len(content) != len(self._content) or any(
            a is not b for a, b in zip(content, self._content, strict=True)
        ):
            self._content, self._bounded, self._limited = content, None, set()

    def bounded(self, body: dict[str, Any]) -> bool:
        self._same(body)
        if self._bounded is None:
            self._bounded = _messages_bounded(body)
        return self._bounded

    def limit_cache_writes(self, body: dict[str, Any], priced: bool) -> None:
        _limit_control(body, priced)  # the body's own: each model's copy has its own
        self._same(body)
        if False in self._limited or priced in self._limited:  # a rewrite again changes nothing
            return
        _limit_cache_writes(list(self._content), priced)
        self._limited.add(priced)


def messages_shape(
    body: dict[str, Any], cache_writes_priced: bool, readings: Readings | None = None
) -> Shape:
    """Anthropic's Messages: refuse what runs upstream per call, make cache writes what the
    price covers (none when the model has no cache-write price; 5-minute ones, never the
    1-hour ones billed at twice the input, when it has), and tell whether the bytes bound the
    prompt. `readings`: the request's, shared by the models it names."""
    readings = readings or Readings()
    if body.get("mcp_servers"):
        raise refused("mcp_servers", "MCP tools run upstream and bill per call")
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        kind = tool.get("type", "custom") if isinstance(tool, dict) else None
        if kind != "custom":
            raise refused("tools", f"{str(kind)[:32]!r} tools are not offered on this node")
    _refuse_compaction(body.get("context_management"))
    tier = body.get("service_tier")
    if tier == "auto":
        body["service_tier"] = "standard_only"
    elif tier is not None and not (isinstance(tier, str) and tier in MESSAGES_TIERS):
        raise refused("service_tier", f"{str(tier)[:32]!r} is billed above the listed price")
    for field, listed in MESSAGES_AT_LIST_PRICE.items():
        value = body.get(field)
        if value is not None and value != listed:
            raise refused(field, f"{str(value)[:32]!r} is billed above the listed price")
    readings.limit_cache_writes(body, cache_writes_priced)
    unbounded = None if readings.bounded(body) else "messages"
    return Shape(unbounded=unbounded, hidden=tools_prompt(body))


def _refuse_compaction(management: Any) -> None:
    """Edits that only clear earlier tool uses or thinking go on; any other (compaction: another
    pass over the whole prompt, billed on top, not in the counts the node charges) is refused."""
    edits = management.get("edits") if isinstance(management, dict) else management
    for edit in edits if isinstance(edits, list) else [edits] if edits else []:
        kind = edit.get("type") if isinstance(edit, dict) else None
        if not (isinstance(kind, str) and kind.startswith(MESSAGES_CLEARING_EDITS)):
            raise refused("context_management", f"{str(kind)[:32]!r} edits bill another pass")


def _limit_cache_writes(content: list[Any], priced: bool) -> None:
    if b'"cache_control"' not in orjson.dumps(content):  # most bodies: no walk in Python
        return
    stack: list[Any] = content
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            _limit_control(item, priced)
            stack.extend(v for k, v in item.items() if k not in OPAQUE)


def _limit_control(item: dict[str, Any], priced: bool) -> None:
    if "cache_control" in item:
        control = item["cache_control"]
        if not priced or not isinstance(control, dict):
            del item["cache_control"]
        else:
            control.pop("ttl", None)


def _messages_bounded(body: dict[str, Any]) -> bool:
    """True when every content block (system's, each message's, a tool result's) is text.
    Only the messages are told by their role: a block is one by where it is, whatever keys
    it carries (an image with a `role` key is still an image to the upstream)."""
    messages = body.get("messages")
    turns = messages if isinstance(messages, list) else []
    stack = [body.get("system"), *(m.get("content") for m in turns if isinstance(m, dict))]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            kind = item.get("type")
            if not isinstance(kind, str) or kind not in MESSAGES_TEXT_TYPES:
                return False
            stack.append(item.get("content"))
    return True


def for_anthropic(body: dict[str, Any], upstream: UpstreamSection) -> dict[str, Any]:
    """A Messages body as an Anthropic upstream gets it: Anthropic reads a missing tier as
    "auto" (priority capacity, if the operator has it), so one that names none names
    "standard_only", as "auto" is rewritten (messages_shape); none to an upstream whose
    `service_tier` is "" (an Anthropic-compatible API that refuses the field)."""
    if body.get("service_tier") is not None or upstream.service_tier == "":
        return body
    return {**body, "service_tier": "standard_only"}
