"""The sections of what the node sells: [[upstreams]], and the [[models]], [[presets]] and
[[routers]] served through them (node/pricing/catalogue.py builds its catalogue from these)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator

from node.settings.section import MAX_PRICE_USD, MAX_TOKENS, Section, http_url

ENDPOINTS = (  # the OpenAI endpoints the node sells, under /v1
    "chat/completions",
    "completions",
    "embeddings",
    "responses",
    "images/generations",
    "audio/transcriptions",
    "audio/translations",
)


class UpstreamSection(Section):
    name: str = Field(description="Upstream name, referenced by [[models]].upstream")
    base_url: str = Field(
        description="Base URL, e.g. https://api.openai.com/v1 or https://api.anthropic.com/v1"
    )
    kind: Literal["openai", "anthropic"] = Field(
        "openai",
        description="The API it speaks: 'openai' (chat/completions and the rest, Bearer key) or "
        "'anthropic' (Messages: x-api-key and anthropic-version); the node translates between them",
    )
    anthropic_version: str = Field(
        "2023-06-01",
        description="anthropic-version sent to a kind = 'anthropic' upstream when the client "
        "sends none",
    )
    api_key: str = Field("", description="Upstream API key; never returned, never logged")
    display_name: str = Field("", description="Name shown in /v1/providers (default: name)")
    description: str = Field("", description="About text shown in /v1/providers/{name}")
    connect_timeout_s: float = Field(10.0, gt=0, description="Time allowed to connect")
    first_byte_timeout_s: float = Field(
        300.0,
        gt=0,
        description="Time allowed until the answer starts (headers and, for a stream, its first "
        "chunk); past it the next upstream is tried",
    )
    idle_timeout_s: float = Field(
        120.0, gt=0, description="Longest pause allowed between two chunks of an answer"
    )
    list_models: bool = Field(
        True, description="Offer the models the upstream's GET /models lists (when priced)"
    )
    models_refresh_s: float = Field(
        3600.0, gt=0, description="Seconds between refreshes of the upstream's model list"
    )
    prefixes: list[str] | None = Field(
        None,
        description="Model-id patterns routed here even when not listed, e.g. ['gpt-*']; "
        "absent = the built-in rules for the base_url's host (OpenAI, Google, Anthropic, xAI)",
    )
    default_input_usd_per_mtok: float | None = Field(
        None,
        ge=0,
        le=MAX_PRICE_USD,
        description="Price per million prompt tokens for models no source prices",
    )
    default_output_usd_per_mtok: float | None = Field(
        None,
        ge=0,
        le=MAX_PRICE_USD,
        description="Price per million completion tokens for models no source prices",
    )
    health_interval_s: float = Field(
        30.0, gt=0, description="Seconds between health checks (GET /models) of this upstream"
    )
    service_tier: Literal["default", "flex", ""] | None = Field(
        None,
        description="service_tier sent with chat and responses requests that name none (OpenAI "
        "reads a missing one as 'auto': the project's tier, maybe priority, billed above the "
        "price); absent = 'default', except to hosts that refuse the field (Google, Anthropic, "
        "Groq, Mistral); Messages to an Anthropic upstream name 'standard_only' (Anthropic "
        "reads a missing one as 'auto' too); '' = send none (then keep the project on the "
        "default tier)",
    )
    endpoints: list[str] | None = Field(
        None,
        description="The endpoints it serves, e.g. ['chat/completions', 'embeddings']: the only "
        "ones routed to it and listed for it in /v1/info and /v1/providers; absent = all",
    )

    @field_validator("endpoints")
    @classmethod
    def _known_endpoints(cls, endpoints: list[str] | None) -> list[str] | None:
        unknown = [e for e in endpoints or [] if e not in ENDPOINTS]
        if unknown:
            raise ValueError(f"unknown endpoint(s) {unknown}; known: {list(ENDPOINTS)}")
        return endpoints

    def serves(self, endpoint: str) -> bool:
        return self.endpoints is None or endpoint in self.endpoints

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        return http_url(url)


class ModelSection(Section):
    id: str = Field(description="Model id clients ask for")
    upstream: str = Field("", description="Upstream serving it (default: the first)")
    upstreams: list[str] = Field(
        default_factory=list,
        description="More upstreams serving it, tried in order after `upstream` when one fails",
    )
    upstream_model: str = Field("", description="Model id sent upstream (default: id)")
    aliases: list[str] = Field(default_factory=list, description="Other ids clients may use")
    input_usd_per_mtok: float = Field(
        0.0, ge=0, le=MAX_PRICE_USD, description="USD per million prompt tokens"
    )
    output_usd_per_mtok: float = Field(
        0.0, ge=0, le=MAX_PRICE_USD, description="USD per million completion tokens"
    )
    cached_input_usd_per_mtok: float | None = Field(
        None,
        ge=0,
        le=MAX_PRICE_USD,
        description="USD per million prompt tokens read from the upstream's cache;"
        " absent or 0 = input_usd_per_mtok",
    )
    cache_read_usd_per_mtok: float | None = Field(
        None,
        ge=0,
        le=MAX_PRICE_USD,
        description="Same as cached_input_usd_per_mtok (Anthropic's name: cache reads); wins"
        " when both are set",
    )
    cache_write_usd_per_mtok: float | None = Field(
        None,
        ge=0,
        le=MAX_PRICE_USD,
        description="USD per million prompt tokens written to the upstream's cache (Anthropic's"
        " cache_creation_input_tokens); absent = cache_control is removed from requests",
    )
    reasoning_usd_per_mtok: float | None = Field(
        None,
        ge=0,
        le=MAX_PRICE_USD,
        description="USD per million reasoning tokens (part of the completion);"
        " absent or 0 = output_usd_per_mtok",
    )
    request_usd: float | None = Field(
        None,
        ge=0,
        le=MAX_PRICE_USD,
        description="USD per request: alone, a flat price per request; with token prices"
        " (from any source), on top of them (search models); see docs/billing.md",
    )
    image_output_usd: float | None = Field(
        None, ge=0, le=MAX_PRICE_USD, description="USD per image generated (/v1/images/generations)"
    )
    audio_usd_per_minute: float | None = Field(
        None,
        ge=0,
        le=MAX_PRICE_USD,
        description="USD per minute of audio transcribed; absent = transcriptions priced by token",
    )
    max_audio_seconds: int = Field(
        1500,
        gt=0,
        le=86_400,
        description="Longest clip the upstream transcribes (OpenAI: 1500 s); a clip whose length "
        "cannot be read from it (compressed audio) is reserved and, once sent, charged at least "
        "this long unless the upstream reports its length",
    )
    context_length: int = Field(
        128_000, gt=0, le=MAX_TOKENS, description="Context window in tokens"
    )
    max_output_tokens: int = Field(
        4096, gt=0, le=MAX_TOKENS, description="Most tokens one answer may have"
    )
    name: str = Field("", description="Display name in /v1/models and /v1/catalog (default: id)")
    description: str = Field("", description="About the model, shown in /v1/models")
    completions: bool | None = Field(
        None,
        description="The upstream serves it on /completions (for /v1/text/generations);"
        " absent = guessed from the id (instruct, davinci, babbage)",
    )


class PresetSection(Section):
    name: str = Field(description="Clients select it as model 'preset/<name>'")
    model: str = Field(description="The model (or alias) it runs on")
    system_prompt: str = Field("", description="System prompt placed before the client's messages")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Default request parameters (temperature, max_tokens, …); the client's win",
    )
    description: str = Field("", description="Shown in /v1/models")
    memory_turns: int = Field(
        0,
        ge=0,
        le=100,
        description="Turns kept per key and replayed before its messages (0 = no memory);"
        " read and forgotten with GET/DELETE /v1/memory/<name>",
    )

    @field_validator("params")
    @classmethod
    def _finite_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        if not _finite(params):  # free-form, so allow_inf_nan does not reach inside
            raise ValueError("numbers must be finite")
        return params


class RouterSection(Section):
    name: str = Field(description="Clients select it as a model by this name, e.g. 'auto'")
    candidates: list[str] = Field(
        min_length=1, description="Models it may choose among (each by its id or alias)"
    )
    order: Literal["cheapest", "listed"] = Field(
        "cheapest",
        description="Try the cheapest fitting model first, or the candidates' own order",
    )
    description: str = Field("", description="Shown in /v1/models")


def _finite(value: Any) -> bool:
    """Whether no float anywhere in `value` (nested lists and tables too) is inf or NaN."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        value = list(value.values())
    return all(_finite(item) for item in value) if isinstance(value, list) else True
