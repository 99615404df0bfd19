"""What in a request changes what the upstream bills, and how the node bounds each part.

docs/billing.md is the table; this module is its code (the meters call it from `plan`). Every
request field that changes an upstream's bill is one of:

    priced     charged exactly from the upstream's usage (output limits, n, best_of, ...)
    bounded    reserved up to a bound, and never charged past it: the prompt by its bytes, or
               by the model's context when an input's tokens are not in the body's bytes
    refused    a 400 naming the field, before any payment

Why the bytes bound a text prompt: every tokenizer in use (byte-level BPE, SentencePiece with
byte fallback) emits at most one token per byte of text, the JSON body is at least as long as
the text it carries, and chat templates and tool renderings add less than the JSON skeleton
around the same text (PROMPT_OVERHEAD_TOKENS covers the rest: a default system prompt).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from node.errors import BadRequest
from node.settings.catalogue import UpstreamSection

MAX_MODEL_ID_CHARS = 256
PROMPT_OVERHEAD_TOKENS = 256  # template tokens no byte of the body stands for
# A request with tools: the system prompt an upstream writes to explain them, billed as input
# (Anthropic's table: 346 tokens on Claude 4 models, up to 530 on Claude 3 Opus; a chat request
# may be translated for an Anthropic upstream).
TOOLS_PROMPT_TOKENS = 600
MAX_CHOICES = 128  # n and best_of
MAX_PROMPTS = 2048  # prompts in one /v1/completions request, inputs in one embeddings request

# Types of content parts and input items whose tokens are their text's (bounded by bytes).
TEXT_TYPES = frozenset(
    {
        "text", "input_text", "output_text", "refusal", "summary_text", "reasoning_text",
        "message", "reasoning", "function", "custom", "function_call", "function_call_output",
        "custom_tool_call", "custom_tool_call_output",
    }
)  # fmt: skip
# Keys whose value stands for tokens the body does not hold: images, files, stored items.
REFERENCE_KEYS = frozenset(
    {"image_url", "image", "file_id", "file_data", "file_url", "video_url", "video"}
)
AUDIO_TYPES = frozenset({"input_audio", "audio_url", "audio"})
# Request fields that point at content stored upstream (Responses): the upstream re-reads it.
STORED_REFERENCES = ("previous_response_id", "conversation", "prompt")
# Tools the client runs (the upstream only writes the call): anything else runs upstream, per call.
CLIENT_TOOLS = frozenset({"function", "custom"})
SERVICE_TIERS = frozenset({"default", "flex"})  # billed at (or below) the listed price
TIERED_PATHS = ("chat/completions", "responses")  # where OpenAI reads a missing tier as "auto"
# OpenAI-compatible APIs that refuse a field they do not know, or read the tiers otherwise.
NO_TIER_HOSTS = frozenset(
    {"generativelanguage.googleapis.com", "api.anthropic.com", "api.groq.com", "api.mistral.ai"}
)
# Models that search the web on every request and bill each search on top of the tokens:
# offered only at a per-request price (node/pricing/catalogue.py).
PER_CALL_MODELS = ("*search*", "*deep-research*", "*sonar*", "*:online")

PROMPT_FIELD = {
    "chat/completions": "messages",
    "completions": "prompt",
    "responses": "input",
    "embeddings": "input",
}


@dataclass(frozen=True)
class Shape:
    """What the upstream will answer and read, as far as billing goes."""

    prompts: int = 1  # prompts answered separately (a /v1/completions list), inputs embedded
    answers: int = 1  # completions written in all: prompts x n (x best_of when larger)
    unbounded: str | None = None  # the field with input whose tokens its bytes do not bound
    hidden: int = 0  # prompt tokens the upstream adds that no byte stands for (tool use)


def check_model_id(model_id: Any) -> None:
    """A model id is short and printable, or refused before it is looked up, kept or logged."""
    if isinstance(model_id, str) and (
        len(model_id) > MAX_MODEL_ID_CHARS or not model_id.isprintable()
    ):
        raise BadRequest(
            f"model: an id of at most {MAX_MODEL_ID_CHARS} printable characters is expected",
            param="model",
            code="invalid_model",
        )


def bills_per_call(model_id: str) -> bool:
    lowered = model_id.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern) for pattern in PER_CALL_MODELS)


Reading = Callable[[Any, str, str], tuple[bool, int]]  # read_prompt, or a memo of it


def shape(path: str, body: dict[str, Any], reading: Reading | None = None) -> Shape:
    """Refuse what the node cannot bound (a 400 naming the field), rewrite what it can make
    bounded, and tell what the upstream will bill for the rest. `reading`: read_prompt's."""
    _refuse_billed_extras(body)
    field = PROMPT_FIELD.get(path, "")
    bounded, prompts = (reading or read_prompt)(body.get(field), field, path)
    unbounded = None if bounded else field
    if path == "responses":
        unbounded = next((n for n in STORED_REFERENCES if body.get(n) is not None), unbounded)
    if path == "embeddings":
        return Shape(prompts, 0, unbounded)
    # n answers per prompt; best_of: the upstream writes (and bills) that many to return n
    per_prompt = positive_int(body, "n", 1, MAX_CHOICES)
    if body.get("best_of") is not None:
        per_prompt = max(per_prompt, positive_int(body, "best_of", 1, MAX_CHOICES))
    return Shape(prompts, prompts * per_prompt, unbounded, tools_prompt(body))


def tools_prompt(body: dict[str, Any]) -> int:
    """The prompt tokens an upstream adds to explain the request's tools, at the most."""
    tools = body.get("tools")
    return TOOLS_PROMPT_TOKENS if isinstance(tools, list) and tools else 0


def prompt_bound(shape: Shape, body_bytes: int, context_length: int, context_known: bool) -> int:
    """The most prompt tokens the upstream can bill: reserved, and never charged past.

    An upstream bills no prompt past its context, so the context bounds what the bytes do not
    (images, files, stored items) — when the node knows it: many models' context lengths are
    in no price source, and a guess below the upstream's would let it bill past the bound."""
    ceiling = context_length * shape.prompts
    if shape.unbounded is not None:
        if not context_known:
            raise BadRequest(
                f"{shape.unbounded}: images, files and stored items are offered only on models "
                "whose context length the node knows ([[models]] context_length)",
                param=shape.unbounded,
            )
        return ceiling
    by_bytes = body_bytes + PROMPT_OVERHEAD_TOKENS + shape.hidden
    return min(by_bytes, ceiling) if context_known else by_bytes


def for_upstream(path: str, body: dict[str, Any], upstream: UpstreamSection) -> dict[str, Any]:
    """The body as `upstream` gets it: a request that names no service tier names the one the
    price holds for, since OpenAI (and OpenRouter) read a missing tier as "auto", which bills
    the operator's project tier (priority: about twice the price)."""
    if path not in TIERED_PATHS or body.get("service_tier") is not None:
        return body
    tier = upstream.service_tier
    if tier is None:
        host = urlsplit(upstream.base_url).hostname or ""
        tier = "" if host in NO_TIER_HOSTS else "default"
    return {**body, "service_tier": tier} if tier else body


def positive_int(body: dict[str, Any], field: str, default: int, most: int) -> int:
    value = body.get(field, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
        raise BadRequest(f"{field} must be an integer from 1 to {most}", param=field)
    return value


def refused(field: str, why: str) -> BadRequest:
    """A 400 naming `field`: what it asks for bills beyond what the node can bound."""
    return BadRequest(f"{field}: {why}; not offered on this node", param=field)


def _present(value: Any) -> bool:
    return value is not None


def _audio_out(value: Any) -> bool:
    return isinstance(value, list) and "audio" in value


def _names_cached_content(value: Any) -> bool:
    return _has_key(value, "cached_content")


# Fields the node refuses wherever they come (unknown fields are otherwise passed on).
REFUSED_FIELDS: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("background", bool, "a background answer is written and billed after the reply"),
    ("web_search_options", _present, "web searches bill per call"),
    ("plugins", _present, "plugins (web search, file parsing) bill per call"),
    ("modalities", _audio_out, "audio output tokens bill far above text tokens"),
    ("audio", _present, "audio output tokens bill far above text tokens"),
    ("prediction", _present, "rejected prediction tokens bill beyond the output limit"),
    ("provider", _present, "provider routing may pick an endpoint dearer than the price"),
    ("extra_body", _names_cached_content, "cached_content re-reads (and bills) stored tokens"),
    ("context_management", bool, "server-side compaction bills another pass over the input"),
)


def _refuse_billed_extras(body: dict[str, Any]) -> None:
    """Fields that make the upstream bill beyond tokens the node can bound."""
    for name, is_refused, why in REFUSED_FIELDS:
        if name in body and is_refused(body[name]):
            raise refused(name, why)
    tier = body.get("service_tier")
    if tier == "auto":  # may pick the operator's priority or scale tier: billed above the price
        body["service_tier"] = "default"
    elif tier is not None and not (isinstance(tier, str) and tier in SERVICE_TIERS):
        raise refused("service_tier", f"{str(tier)[:32]!r} is billed above the listed price")
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        if not _client_tool(tool):
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise refused("tools", f"{str(kind)[:32]!r} tools run upstream and bill per call")
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and not _client_tool_choice(choice):
        raise refused("tool_choice", "tools that run upstream bill per call")


def _client_tool(tool: Any) -> bool:
    kind = tool.get("type") if isinstance(tool, dict) else None
    return isinstance(kind, str) and kind in CLIENT_TOOLS


def _client_tool_choice(choice: dict[str, Any]) -> bool:
    if choice.get("type") == "allowed_tools":
        allowed = choice.get("tools")
        return isinstance(allowed, list) and all(_client_tool(t) for t in allowed)
    return _client_tool(choice)


def _has_key(value: Any, key: str) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if key in item:
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


# In a prompt written by orjson (keys and strings as they are, no escapes), any of these means
# it must be walked: an input whose tokens its bytes do not bound, or one refused.
WALK_MARKERS = tuple(
    f'"{name}"'.encode() for name in (*REFERENCE_KEYS, *AUDIO_TYPES, "cache_control")
)
COMMON_TEXT_TYPES = ("text", "input_text", "message", "output_text")  # counted first
TEXT_TYPE_MARKERS = tuple(
    f'"type":"{kind}"'.encode()
    for kind in (*COMMON_TEXT_TYPES, *sorted(TEXT_TYPES.difference(COMMON_TEXT_TYPES)))
)


def _plain_text(given: Any) -> bool:
    """True when the prompt is text alone, read at C speed from orjson's rendering of it:
    no key or value that needs a look, and every "type" one of the text types. A prompt of
    many tiny parts then costs no walk in Python; anything else is walked."""
    try:
        text = orjson.dumps(given)
    except orjson.JSONEncodeError:
        return False
    if any(marker in text for marker in WALK_MARKERS):
        return False
    types, text_types = text.count(b'"type":'), 0
    for marker in TEXT_TYPE_MARKERS:
        if text_types == types:
            break
        text_types += text.count(marker)
    return text_types == types


def read_prompt(given: Any, field: str, path: str) -> tuple[bool, int]:
    """Whether the prompt's bytes bound its tokens, and how many prompts it holds: read from
    the prompt alone, the one walk over it (a request's models may share one reading)."""
    if not field:
        return True, 1
    bounded = _scan_prompt(given, field)
    if path not in ("completions", "embeddings"):
        return bounded, 1
    prompts = _count_prompts(given, field)
    if path == "embeddings" and given == "":
        raise BadRequest(f"{field} must be a string or a non-empty array", param=field)
    if path == "embeddings" and isinstance(given, list) and any(isinstance(x, dict) for x in given):
        bounded = False  # multimodal inputs (an image to embed): not in the bytes
    return bounded, prompts


def _scan_prompt(given: Any, field: str) -> bool:
    """Walk the prompt (iteratively: nesting can be 1000 deep); True if its bytes bound its
    tokens. Audio and prompt-cache writes are refused: both bill above the input price."""
    if _plain_text(given):
        return True
    bounded = True
    stack = [given]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        kind = kind if isinstance(kind, str) else None
        if kind in AUDIO_TYPES or not AUDIO_TYPES.isdisjoint(item):
            raise refused(field, "audio input tokens bill far above text tokens")
        if "cache_control" in item:
            raise refused(field, "cache_control: prompt-cache writes bill above the input price")
        if (kind is not None and kind not in TEXT_TYPES) or not REFERENCE_KEYS.isdisjoint(item):
            bounded = False
        stack.extend(item.values())
    return bounded


def _count_prompts(given: Any, field: str) -> int:
    """Prompts (or embedding inputs): a string, token ids, or a list of either."""
    if isinstance(given, str) or (
        isinstance(given, list) and given and all(_is_token_id(x) for x in given)
    ):
        return 1
    if not isinstance(given, list) or not given:
        raise BadRequest(f"{field} must be a string or a non-empty array", param=field)
    if len(given) > MAX_PROMPTS:
        raise BadRequest(f"{field}: at most {MAX_PROMPTS} entries", param=field)
    return len(given)


def _is_token_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
