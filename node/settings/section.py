"""What every settings section shares: no unknown keys, no inf or NaN, and the bounds that keep
a request's cost within the ledger's 64-bit msat."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

# Highest USD price (per million tokens, image, minute): generous, and far below where a
# request's cost stops fitting the ledger's 64-bit msat (10^6 tokens at it: 10^6 USD).
MAX_PRICE_USD = 1_000_000
# Costs scale with these too; unbounded, a 1e300 markup or a 1e-300 BTC rate made costs (and a
# 10^30 context length made /v1/models) overflow 64 bits: a 500. Each is far past any real use.
MAX_MARKUP = 1000
MIN_BTC_USD = 1
MAX_TOKENS = 10**8  # context_length and max_output_tokens
MAX_FEE_MSAT = 10**11  # request_fee_msat and min_charge_msat: 1 BTC


class Section(BaseModel):
    # TOML and the environment can spell inf and nan; no timeout, rate or price may be either.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def http_url(url: str, what: str = "") -> str:
    """`url` without its trailing slash; ValueError unless it is http(s). `what` names the
    URL in the message (a mint's, say), which then quotes it."""
    if not url.startswith(("http://", "https://")):
        named = f"{what} URL must start with http:// or https://: {url!r}"
        raise ValueError(named if what else "must start with http:// or https://")
    return url.rstrip("/")
