"""Node configuration: a TOML file, overridden key by key by `NUTGATE_<SECTION>__<KEY>` variables.

Settings are built once at start and passed in; nothing reads a global. Every field carries a
description: the README's configuration table is generated from them (and a test keeps it so).
"""

from __future__ import annotations

import ipaddress
import math
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

# Highest USD price (per million tokens, image, minute): generous, and far below where a
# request's cost stops fitting the ledger's 64-bit msat (10^6 tokens at it: 10^6 USD).
MAX_PRICE_USD = 1_000_000
# Costs scale with these too; unbounded, a 1e300 markup or a 1e-300 BTC rate made costs (and a
# 10^30 context length made /v1/models) overflow 64 bits: a 500. Each is far past any real use.
MAX_MARKUP = 1000
MIN_BTC_USD = 1
MAX_TOKENS = 10**8  # context_length and max_output_tokens
MAX_FEE_MSAT = 10**11  # request_fee_msat and min_charge_msat: 1 BTC
ENDPOINTS = (  # the OpenAI endpoints the node sells, under /v1
    "chat/completions",
    "completions",
    "embeddings",
    "responses",
    "images/generations",
    "audio/transcriptions",
    "audio/translations",
)


class Section(BaseModel):
    # TOML and the environment can spell inf and nan; no timeout, rate or price may be either.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class NodeSection(Section):
    name: str = Field("nutgate node", description="Shown in /v1/info and announcements")
    description: str = Field("LLM access paid with Cashu ecash", description="About text")
    host: str = Field("127.0.0.1", description="Address to listen on")
    port: int = Field(8000, ge=0, le=65535, description="Port to listen on (0 = any free port)")
    public_url: str = Field("", description="Announced URL (default: http://host:port)")
    data_dir: Path = Field(Path("./data"), description="SQLite database and node keys live here")
    admin_password: str = Field(
        "", description="Admin password; if empty, generated on first start and printed once"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses (IPs or CIDRs) of the TLS proxies in front of the node whose "
        "X-Forwarded-Proto is believed (the admin cookie is Secure when it says https); "
        "empty = never believed",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, proxies: list[str]) -> list[str]:
        try:
            return [str(ipaddress.ip_network(p.strip(), strict=False)) for p in proxies]
        except ValueError as exc:
            raise ValueError(f"each must be an IP address or a CIDR network: {exc}") from None


class StoreSection(Section):
    url: str = Field(
        "",
        description="PostgreSQL URL (postgresql://…) to run several instances on one database;"
        " empty = SQLite in data_dir",
    )

    @field_validator("url")
    @classmethod
    def _postgres_or_empty(cls, value: str) -> str:
        if value and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be empty (SQLite in data_dir) or a postgresql:// URL")
        return value


class CashuSection(Section):
    mints: list[str] = Field(
        default_factory=list, description="The only mints whose tokens are accepted"
    )
    mint_timeout_s: float = Field(
        10.0, gt=0, description="Time allowed per call to a mint; then 503 + Retry-After"
    )
    accept_foreign: bool = Field(
        False,
        description="Take tokens of other mints at /v1/wallet/create and /topup by melting "
        "them into a Lightning invoice of a trusted mint, their fees charged to the token "
        "(off: refused before any contact with that mint)",
    )

    @field_validator("mints")
    @classmethod
    def _strip_slash(cls, mints: list[str]) -> list[str]:
        for url in mints:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"mint URL must start with http:// or https://: {url!r}")
        return [url.rstrip("/") for url in mints]


class LightningSection(Section):
    enabled: bool = Field(
        True,
        description="Sell access for Lightning invoices and pay withdrawals to invoices "
        "(needs a trusted mint that offers bolt11)",
    )
    mint: str = Field(
        "",
        description="The trusted mint that issues the node's invoices; empty = the first "
        "trusted mint offering bolt11",
    )
    min_sats: int = Field(1, ge=1, description="Smallest invoice a client may ask for (sat)")
    max_sats: int = Field(
        1_000_000, ge=1, le=10**9, description="Largest invoice a client may ask for (sat)"
    )
    max_open_invoices: int = Field(
        1000,
        ge=1,
        le=10**6,
        description="Most unpaid invoices the node watches at once; past it, new ones get "
        "503 + Retry-After (each costs a mint call per round)",
    )
    watch_interval_s: float = Field(
        2.0,
        gt=0,
        le=3600,
        description="How often the node asks the mint about its open invoices (credited "
        "whether or not a client polls)",
    )

    melt_timeout_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Time a mint has to pay an invoice; then the payment is in doubt and "
        "settled from the mint's record of it",
    )
    lnurl_allow_local: bool = Field(
        False,
        description="Pay Lightning addresses, and accept foreign tokens (accept_foreign) of mints, "
        "whose host is on a private or loopback address, over plain http (local setups and tests "
        "only)",
    )

    earnings_address: str = Field(
        "",
        description="Lightning address (name@host) the operator's earnings are paid to "
        "automatically; empty = no automatic payout",
    )
    earnings_threshold_sats: int = Field(
        0,
        ge=0,
        le=10**9,
        description="Earnings (sat) at which they are paid to earnings_address (0 = off)",
    )

    @field_validator("earnings_address")
    @classmethod
    def _address(cls, address: str) -> str:
        address = address.strip()
        if address and "@" not in address and not address.lower().startswith("lnurl1"):
            raise ValueError("must be a Lightning address (name@host) or an lnurl1… string")
        return address

    @field_validator("mint")
    @classmethod
    def _mint_url(cls, mint: str) -> str:
        if mint and not mint.startswith(("http://", "https://")):
            raise ValueError(f"mint URL must start with http:// or https://: {mint!r}")
        return mint.rstrip("/")


class PricingSection(Section):
    btc_usd: float | None = Field(
        None,
        ge=MIN_BTC_USD,
        description="Fixed BTC price in USD; absent = live rate from exchanges",
    )
    markup: float = Field(1.0, gt=0, le=MAX_MARKUP, description="Multiplier on upstream USD prices")
    request_fee_msat: int = Field(
        0, ge=0, le=MAX_FEE_MSAT, description="Flat fee added to each paid request"
    )
    min_charge_msat: int = Field(0, ge=0, le=MAX_FEE_MSAT, description="Least a paid request costs")
    btc_usd_sources: list[str] = Field(
        default_factory=list,
        description="Exchange ticker URLs for the live rate (empty = built-in list); "
        "the answer's shape comes from the host or a #kraken-style fragment",
    )
    btc_usd_refresh_s: float = Field(60.0, gt=0, description="Seconds between rate refreshes")
    btc_usd_timeout_s: float = Field(5.0, gt=0, description="Time allowed per exchange call")
    btc_usd_max_age_s: float = Field(
        600.0, gt=0, description="How long the last good rate is used while exchanges fail"
    )
    btc_usd_min_answers: int = Field(1, ge=1, description="Exchange answers needed to update")


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
        "Groq, Mistral); '' = send none (then keep the project on the default tier)",
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
        if not url.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return url.rstrip("/")


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


class LimitsSection(Section):
    per_minute: int = Field(60, ge=0, description="Requests per key per minute (0 = off)")
    per_hour: int = Field(1000, ge=0, description="Requests per key per hour (0 = off)")
    per_day: int = Field(10000, ge=0, description="Requests per key per day (0 = off)")
    unlimited_above_msat: int = Field(
        0,
        ge=0,
        le=MAX_FEE_MSAT,
        description="Keys holding at least this many msat are not rate limited; credits"
        " still apply (0 = off)",
    )
    max_body_bytes: int = Field(10 * 1024 * 1024, gt=0, description="Largest request body")
    max_header_bytes: int = Field(
        64 * 1024,
        ge=8190,
        le=1024 * 1024,
        description="Longest request line or header (a token in X-Cashu or Authorization); "
        "larger gets 431",
    )
    header_timeout_s: float = Field(
        15.0, gt=0, description="Time a connection has to send a request's headers (and idle)"
    )
    body_timeout_s: float = Field(
        60.0, gt=0, description="Time a client has to send a request's body; then 408"
    )


class AccountsSection(Section):
    history_days: int = Field(
        30,
        ge=0,
        le=36500,
        description="Days a record of each paid request (cost, tokens, model; never its text)"
        " is kept for its key's holder; 0 = none kept",
    )


class LogSection(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Least severe log level written"
    )
    format: Literal["json", "text"] = Field(
        "json", description="json: one JSON object per line; text: for reading in a terminal"
    )

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, level: object) -> object:
        return level.upper() if isinstance(level, str) else level


class HttpSection(Section):
    cors_origins: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Web origins whose pages may call the API (browser wallets); '*' = any, "
        "[] = none. Never /admin",
    )


class NostrSection(Section):
    relays: list[str] = Field(default_factory=list, description="Relays to announce on")
    announce: bool = Field(False, description="Publish the kind-38421 provider announcement")
    nsec: str = Field("", description="Node key; empty = generated and kept in data_dir")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NUTGATE_", env_nested_delimiter="__", extra="forbid"
    )

    node: NodeSection = Field(default_factory=NodeSection)
    store: StoreSection = Field(default_factory=StoreSection)
    cashu: CashuSection = Field(default_factory=CashuSection)
    lightning: LightningSection = Field(default_factory=LightningSection)
    pricing: PricingSection = Field(default_factory=PricingSection)
    upstreams: list[UpstreamSection] = Field(default_factory=list)
    models: list[ModelSection] = Field(default_factory=list)
    presets: list[PresetSection] = Field(default_factory=list)
    routers: list[RouterSection] = Field(default_factory=list)
    limits: LimitsSection = Field(default_factory=LimitsSection)
    http: HttpSection = Field(default_factory=HttpSection)
    accounts: AccountsSection = Field(default_factory=AccountsSection)
    nostr: NostrSection = Field(default_factory=NostrSection)
    log: LogSection = Field(default_factory=LogSection)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the file (passed as init kwargs); no .env files are read.
        return env_settings, init_settings

    @property
    def database_path(self) -> Path:
        return self.node.data_dir / "nutgate.sqlite3"


class ConfigError(Exception):
    """The configuration cannot be used; the message names the offending key."""


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read the TOML file (if any), apply env overrides, validate. Raises ConfigError."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    data.update(overrides)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc
    _check_references(settings)
    return settings


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"])
        lines.append(f"{key}: {err['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _check_references(settings: Settings) -> None:
    names = [u.name for u in settings.upstreams]
    if len(set(names)) != len(names):
        raise ConfigError("upstreams: names must be unique")
    for i, model in enumerate(settings.models):
        for ref in [model.upstream, *model.upstreams]:
            if ref and ref not in names:
                raise ConfigError(f"models.{i}.upstream: no upstream named {ref!r}")
    lightning = settings.lightning
    if lightning.min_sats > lightning.max_sats:
        raise ConfigError("lightning.min_sats: more than lightning.max_sats")
    if lightning.mint and lightning.mint not in settings.cashu.mints:
        raise ConfigError("lightning.mint: not one of cashu.mints")
    presets = [p.name for p in settings.presets]
    if len(set(presets)) != len(presets):
        raise ConfigError("presets: names must be unique")
    routers = [r.name for r in settings.routers]
    if len(set(routers)) != len(routers):
        raise ConfigError("routers: names must be unique")
