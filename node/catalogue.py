"""The models this node sells: which upstream serves each, at what price, with what limits."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from node.errors import NotFound
from node.pricing import Price
from node.settings import Settings, UpstreamSection


@dataclass(frozen=True)
class Model:
    id: str
    upstream: UpstreamSection
    upstream_model: str
    price: Price
    context_length: int
    max_output_tokens: int
    created: int

    def to_json(self, sats_pricing: dict[str, str] | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": self.id,
            "object": "model",
            "created": self.created,
            "owned_by": self.upstream.name,
            "pricing": self.price.to_json(),
            "context_length": self.context_length,
            "max_output_tokens": self.max_output_tokens,
        }
        if sats_pricing is not None:
            entry["sats_pricing"] = sats_pricing
        return entry


class Catalogue:
    def __init__(self, models: list[Model]):
        self._models = {m.id: m for m in models}

    @classmethod
    def from_settings(cls, settings: Settings) -> Catalogue:
        upstreams = {u.name: u for u in settings.upstreams}
        created = int(time.time())
        models = []
        for entry in settings.models:
            if not upstreams:
                break
            upstream = upstreams.get(entry.upstream) or settings.upstreams[0]
            models.append(
                Model(
                    id=entry.id,
                    upstream=upstream,
                    upstream_model=entry.upstream_model or entry.id,
                    price=Price.per_million(entry.input_usd_per_mtok, entry.output_usd_per_mtok),
                    context_length=entry.context_length,
                    max_output_tokens=entry.max_output_tokens,
                    created=created,
                )
            )
        return cls(models)

    def get(self, model_id: Any) -> Model:
        if not isinstance(model_id, str) or not model_id:
            raise NotFound("no model given", param="model", code="model_not_found")
        model = self._models.get(model_id)
        if model is None:
            raise NotFound(
                f"the model {model_id!r} does not exist on this node",
                param="model",
                code="model_not_found",
            )
        return model

    def all(self) -> list[Model]:
        return list(self._models.values())
