"""Anthropic's usage, its four counts in one record, and the mapping to and from OpenAI's.

Anthropic splits the prompt in three: `input_tokens` (read fresh), `cache_creation_input_tokens`
(written to the cache, dearer) and `cache_read_input_tokens` (read from it, cheaper); the whole
prompt is their sum. OpenAI's `prompt_tokens` is the whole prompt, of which
`prompt_tokens_details.cached_tokens` were read from a cache, and has no cache-write count.

Readers return None unless every count needed is there and is a count, so the caller estimates
the cost rather than charging nothing for an answer whose usage is missing or odd.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AnthropicUsage:
    input_tokens: int  # read fresh: excludes both cache counts
    output_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        """The whole prompt, as OpenAI counts it."""
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    def as_messages_usage(self) -> dict[str, Any]:
        """Anthropic's `usage` object."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
        }

    def as_chat_usage(self) -> dict[str, Any]:
        """OpenAI's `usage` object, the cache-write count kept visible (as LiteLLM does) so the
        client and the node's pricing can see what was billed at the cache-write price."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.prompt_tokens + self.output_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cache_read_input_tokens},
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
        }


def read_anthropic_usage(raw: Any) -> AnthropicUsage | None:
    """Anthropic's `usage` object, or None when `input_tokens` or `output_tokens` is missing or
    any count is not a count. Cache counts that are absent or null are 0 (Anthropic omits them
    when no cache was touched)."""
    if not isinstance(raw, dict):
        return None
    counts = [_count(raw.get(name)) for name in ("input_tokens", "output_tokens")]
    caches = [
        0 if raw.get(name) is None else _count(raw.get(name))
        for name in ("cache_creation_input_tokens", "cache_read_input_tokens")
    ]
    values = counts + caches
    if any(value is None for value in values):
        return None
    fresh, output, written, read = (int(value or 0) for value in values)
    return AnthropicUsage(fresh, output, written, read)


def read_chat_usage(raw: Any) -> AnthropicUsage | None:
    """OpenAI's `usage` object in Anthropic's terms: cached tokens are cache reads and the rest
    of the prompt is fresh input. None when a needed count is missing or odd, or the cached
    count exceeds the prompt."""
    if not isinstance(raw, dict):
        return None
    prompt = _count(raw.get("prompt_tokens"))
    completion = _count(raw.get("completion_tokens"))
    details = raw.get("prompt_tokens_details")
    cached_raw = details.get("cached_tokens") if isinstance(details, dict) else None
    cached = 0 if cached_raw is None else _count(cached_raw)
    if prompt is None or completion is None or cached is None or cached > prompt:
        return None
    return AnthropicUsage(prompt - cached, completion, 0, cached)


def merge_stream_usage(so_far: dict[str, Any], update: Any) -> dict[str, Any]:
    """A stream's usage after one more report. `message_start` carries the first counts and each
    `message_delta` cumulative totals: a count given overwrites, one left out or null stays."""
    if not isinstance(update, dict):
        return so_far
    merged = dict(so_far)
    for name, value in update.items():
        if value is not None:
            merged[name] = value
    return merged


def _count(value: Any) -> int | None:
    """A token count: a number >= 0, rounded up (some upstreams send 12.0), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and 0 <= value < math.inf:
        return math.ceil(value)
    return None
