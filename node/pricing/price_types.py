"""The price of one model as the price sources give it: USD per token, exact `Fraction`s.

Reasoning tokens are part of `completion_tokens` and cached tokens part of `prompt_tokens`; a
price of 0 (or none) for them means "not priced apart", so they cost the completion / prompt
price, never nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

MTOK = 10**6


class PriceSource(StrEnum):
    CONFIG = "config"
    UPSTREAM = "upstream"
    GENAI_PRICES = "genai-prices"


@dataclass(frozen=True)
class PriceTier:
    """Prices once a request's prompt exceeds `above_prompt_tokens` (for all its tokens)."""

    above_prompt_tokens: int
    prompt: Fraction
    completion: Fraction
    cached_prompt: Fraction
    reasoning: Fraction


@dataclass(frozen=True)
class ModelPrice:
    """USD per token (per request, per image) for one model, and the source it came from."""

    model_id: str
    source: PriceSource
    prompt: Fraction
    completion: Fraction
    cached_prompt: Fraction  # prompt tokens served from the upstream's cache
    reasoning: Fraction  # reasoning tokens (part of completion_tokens)
    request: Fraction = Fraction(0)  # per request, upstream's own (the node's fee is apart)
    image: Fraction | None = None  # per input image, when the upstream lists one
    context_length: int | None = None
    max_output_tokens: int | None = None
    tiers: tuple[PriceTier, ...] = ()  # long-context prices (genai-prices), ascending

    def for_prompt(self, prompt_tokens: int) -> ModelPrice:
        """The flat prices a request with this many prompt tokens pays (tiers resolved)."""
        for tier in reversed(self.tiers):
            if prompt_tokens > tier.above_prompt_tokens:
                return replace(
                    self,
                    prompt=tier.prompt,
                    completion=tier.completion,
                    cached_prompt=tier.cached_prompt,
                    reasoning=tier.reasoning,
                    tiers=(),
                )
        return replace(self, tiers=())


def exact(value: object) -> Fraction | None:
    """A decimal number as written ("0.15", 0.15, Decimal) as a Fraction; None if not one."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        return None
    try:
        return Fraction(Decimal(str(value).strip()))
    except (ArithmeticError, ValueError):  # "abc", NaN, Infinity
        return None


def or_default(value: Fraction | None, default: Fraction) -> Fraction:
    # 0 or absent means "not priced apart": charge the base price, never nothing.
    return value if value is not None and value > 0 else default
