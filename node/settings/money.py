"""The sections of the node's money: the mints it trusts, Lightning, and how it prices in sat."""

from __future__ import annotations

from pydantic import Field, field_validator

from node.settings.section import MAX_FEE_MSAT, MAX_MARKUP, MIN_BTC_USD, Section, http_url


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
        return [http_url(url, "mint") for url in mints]


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
        return http_url(mint, "mint") if mint else mint


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
