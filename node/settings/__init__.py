"""Node configuration: a TOML file, overridden key by key by `NUTGATE_<SECTION>__<KEY>` variables.

Settings are built once at start and passed in; nothing reads a global. Every field carries a
description: the README's configuration table is generated from them (and a test keeps it so).
This module holds the whole (`Settings`), its loading and the checks across sections; the
sections live beside it: `service` (the node as a service), `money` (mints, Lightning, pricing
in sat) and `catalogue` (upstreams and what is sold through them).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from node.settings.catalogue import ModelSection, PresetSection, RouterSection, UpstreamSection
from node.settings.money import CashuSection, LightningSection, PricingSection
from node.settings.service import (
    AccountsSection,
    HttpSection,
    LimitsSection,
    LogSection,
    NodeSection,
    NostrSection,
    StoreSection,
)


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
