"""A model as this node sells it: the upstreams that serve it in failover order (`Route`), its
price and limits, and its /v1/models entry. node/pricing/catalogue.py finds and builds them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from node.pricing.prices import Price
from node.settings.catalogue import PresetSection, RouterSection, UpstreamSection


@dataclass(frozen=True)
class Route:
    upstream: UpstreamSection
    upstream_model: str


@dataclass(frozen=True)
class Model:
    id: str
    routes: tuple[Route, ...]  # failover order
    price: Price
    context_length: int
    max_output_tokens: int
    created: int
    image_usd: Fraction | None = None  # per image generated
    audio_minute_usd: Fraction | None = None  # per minute transcribed (else by token)
    max_audio_seconds: int = 1500  # the longest clip its upstreams transcribe
    preset: PresetSection | None = None
    description: str = ""
    token_priced: bool = True  # False: priced per image / per minute only, never per token
    context_known: bool = True  # False: no source gave context_length (a default stands in)
    completions: bool = False  # the upstream serves it on /completions as well as chat
    about: tuple[tuple[str, Any], ...] = ()  # its upstream listing's name, description, …
    name: str = ""  # the operator's display name
    router: RouterSection | None = None  # a router: its candidates are the models it may use

    @property
    def upstream(self) -> UpstreamSection:
        return self.routes[0].upstream

    @property
    def upstream_model(self) -> str:
        return self.routes[0].upstream_model

    @property
    def dialects(self) -> list[str]:
        """The APIs a client may call it with: "openai" (chat/completions, and the rest when an
        upstream speaks it) and "anthropic" (/v1/messages), translated where the upstream
        speaks the other; a model priced per image or minute only: its OpenAI endpoint."""
        return ["openai", "anthropic"] if self.token_priced else ["openai"]

    def to_json(self, sats_pricing: dict[str, str] | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": self.id,
            "object": "model",
            "created": self.created,
            "owned_by": self.upstream.name,
            "pricing": self.price.to_json(),
            "context_length": self.context_length,
            "max_output_tokens": self.max_output_tokens,
            "dialects": self.dialects,
            "upstream_dialects": sorted({route.upstream.kind for route in self.routes}),
        }
        if self.image_usd is not None:
            entry["pricing"]["image_output"] = _decimal(self.image_usd)
        if self.audio_minute_usd is not None:
            entry["pricing"]["audio_minute"] = _decimal(self.audio_minute_usd)
        if self.description:
            entry["description"] = self.description
        if sats_pricing is not None:
            entry["sats_pricing"] = sats_pricing
        return entry


def _decimal(value: Fraction) -> str:
    return str(Decimal(value.numerator) / Decimal(value.denominator))
