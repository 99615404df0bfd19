"""Prometheus metrics: one registry per app (never the global one), served at `GET /metrics`.

Requests, latency and overhead are recorded by the observe middleware from each request's
`Trace`; balances are read from the ledger at scrape time, so they are never stale. The wallet
reports redemptions, payouts and mint failures after they happen through `WalletMetrics`
(its `events`), so a retried payout that returns an earlier token is not counted twice.

Labels stay bounded: routes are route templates (or "unmatched"), models are catalogue ids
(or "" before one is known), so a client cannot grow the series without end.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from node.money.ledger import Ledger

# LLM calls run from milliseconds to minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# What the node adds on top of the upstream: should stay in the low milliseconds.
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)


class LedgerCollector(Collector):
    """Balances outstanding, computed from the ledger on every scrape."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def collect(self) -> Iterator[Metric]:
        balances = self.ledger.balances()
        yield GaugeMetricFamily(
            "nutgate_balances_outstanding_msat",
            "Ecash-backed account balances (operator credit excluded): what the node owes",
            value=balances.owed_msat,
        )
        yield GaugeMetricFamily(
            "nutgate_balances_credit_msat",
            "Operator credit in the balances: spends on requests, never paid out",
            value=balances.credit_msat,
        )
        yield GaugeMetricFamily(
            "nutgate_balances_reserved_msat",
            "Part of the balances held for requests in flight",
            value=balances.reserved_msat,
        )
        yield GaugeMetricFamily(
            "nutgate_accounts", "Accounts in the ledger", value=balances.accounts
        )


class RequestSeries(NamedTuple):
    requests: Counter
    latency: Histogram
    overhead: Histogram
    charged_msat: Counter


class Metrics:
    def __init__(self) -> None:
        self._request_series: dict[tuple[str, str, int], RequestSeries] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "nutgate_requests", "HTTP requests answered", ["route", "model", "status"], registry=r
        )
        self.latency = Histogram(
            "nutgate_request_duration_seconds",
            "Time from request to the end of the answer",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "nutgate_request_overhead_seconds",
            "Time the node added to an upstream call (request time minus upstream time)",
            ["route"],
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.charged_msat = Counter(
            "nutgate_charged_msat", "Msat charged for requests", ["model"], registry=r
        )
        self.upstream_errors = Counter(
            "nutgate_upstream_errors", "Failed upstream calls", ["upstream", "code"], registry=r
        )
        self.rate_limited = Counter(
            "nutgate_rate_limited", "Requests refused by the rate limiter", ["scope"], registry=r
        )
        self.tokens_redeemed_msat = Counter(
            "nutgate_tokens_redeemed_msat", "Ecash redeemed into accounts", ["mint"], registry=r
        )
        self.tokens_paid_out_msat = Counter(
            "nutgate_tokens_paid_out_msat",
            "Ecash paid out (change, withdrawals)",
            ["mint"],
            registry=r,
        )
        self.mint_errors = Counter(
            "nutgate_mint_errors", "Failed mint operations", ["mint", "kind"], registry=r
        )

    def request_series(self, route: str, model: str, status: int) -> RequestSeries:
        """The series one answered request moves, looked up once per label set (bounded)."""
        key = (route, model, status)
        series = self._request_series.get(key)
        if series is None:
            series = self._request_series[key] = RequestSeries(
                self.requests.labels(route, model, str(status)),
                self.latency.labels(route),
                self.overhead.labels(route),
                self.charged_msat.labels(model),
            )
        return series

    def watch_ledger(self, ledger: Ledger) -> None:
        """Balances from `ledger` at every scrape (once the node's parts are built)."""
        self.registry.register(LedgerCollector(ledger))

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The registry in the format the scraper asked for (text 0.0.4 or OpenMetrics)."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type

    async def handler(self, request: web.Request) -> web.Response:
        """`GET /metrics`."""
        body, content_type = self.exposition(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})


class WalletMetrics:
    """The wallet's events as counters (mint labels are trusted mints only: bounded)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def redeemed(self, mint: str, amount_msat: int) -> None:
        self.metrics.tokens_redeemed_msat.labels(mint).inc(amount_msat)

    def paid_out(self, mint: str, amount_msat: int) -> None:
        self.metrics.tokens_paid_out_msat.labels(mint).inc(amount_msat)

    def mint_failed(self, mint: str, kind: str) -> None:
        self.metrics.mint_errors.labels(mint, kind).inc()
