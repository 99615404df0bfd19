"""The dashboard: series from the ledger's entries, a table per model from the request records,
and the BTC rate the prices are charged at, with where it comes from.

Every paid request leaves one `charge` entry, so charges count requests and sum revenue. The
accounts' total balance at a moment is the sum of every entry before it (operator credit
included: the money page shows what of it is owed as ecash). The per-model table reads the
records (kept `[accounts] history_days`): requests, errors (a status other than ok), revenue and
what the upstreams billed (node.pricing.upstream_cost).
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from node.errors import ServiceUnavailable
from node.parts import Parts

MAX_BUCKETS = 400


def series(parts: Parts, hours: int, bucket_s: int, now: int | None = None) -> dict[str, Any]:
    bucket_s = max(60, bucket_s)
    end = (now or int(time.time())) // bucket_s * bucket_s + bucket_s
    count = max(1, min(MAX_BUCKETS, hours * 3600 // bucket_s))
    start = end - count * bucket_s
    balance, by_bucket = parts.ledger.entry_series(start, end, bucket_s)
    points = []
    for i in range(count):
        row = by_bucket.get(i)
        if row is not None:
            balance += int(row["delta"])
        points.append(
            {
                "t": start + i * bucket_s,
                "requests": int(row["requests"]) if row else 0,
                "revenue_msat": int(row["revenue"]) if row else 0,
                "balances_msat": balance,
            }
        )
    return {"bucket_s": bucket_s, "points": points}


def per_model(parts: Parts, hours: int, now: int | None = None) -> dict[str, Any]:
    since = (now or int(time.time())) - hours * 3600
    return {
        "since": since,
        "history_days": parts.settings.accounts.history_days,
        "models": parts.records.per_model(since),
    }


def btc_rate(parts: Parts) -> dict[str, Any]:
    """The rate prices are charged at now (None when there is none: paid requests get a 503)."""
    rate = parts.rate
    if rate.fixed is not None:
        source: dict[str, Any] = {"kind": "fixed", "setting": "pricing.btc_usd"}
    else:
        age = rate.age_s()
        source = {
            "kind": "exchanges",
            "exchanges": [urlsplit(url).hostname for url, _ in rate.sources],
            "median_of": rate.answers,
            "age_s": None if age is None else round(age),
        }
    try:
        usd = rate.current()
    except ServiceUnavailable as exc:
        return {"usd": None, "error": exc.message, "source": source}
    cents = Decimal(usd.numerator) / Decimal(usd.denominator)
    return {"usd": str(cents.quantize(Decimal("0.01"))), "source": source}
