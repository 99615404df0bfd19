"""The dashboard's series, from the ledger's entries: requests, revenue and balances over time.

Every paid request leaves one `charge` entry, so charges count requests and sum revenue. The
accounts' total balance at a moment is the sum of every entry before it (operator credit
included: the money page shows what of it is owed as ecash).
"""

from __future__ import annotations

import time
from typing import Any

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
