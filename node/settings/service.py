"""The sections of the node as a service: where it listens and keeps its data, the limits on
clients, logging, CORS, and its Nostr announcements."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from node.settings.section import MAX_FEE_MSAT, Section


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
