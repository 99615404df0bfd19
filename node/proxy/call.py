"""A paid call: plan the most it can cost, reserve that, forward, charge the real cost.

    plan (meter)  ->  ledger.reserve  ->  upstream 1, 2, … (failover)  ->  ledger.settle

One reservation per request, settled once, whichever upstream answers. An upstream that fails
before anything reached the client (connect error, no first byte in time, 5xx, 429) is passed
over for the model's next one; once a stream has begun there is no going back: it ends with an
error event. Whatever happens after the reservation — success, upstream failure, a client that
goes away, an exception — the `finally` of `run` settles it:

- an answer: its real cost from the upstream's usage, else an estimate from what was sent and
  received; an answer past the read limit: the reservation's most (the upstream wrote it all);
- a stream the client left: the node reads the rest of it (relaying nothing) for its usage;
  one not read out within DRAIN_S, or broken, before its final usage: the reservation's most
  (the upstream writes on, and bills) (the streamed half of a call is in call_stream.py);
- every other call the upstream may bill (`upstream.Attempt.sent`: a timeout, a client gone
  while waiting, a malformed answer): the reservation's most, `plan.max_cost_msat`, since the
  upstream goes on writing the whole answer, and bills it, whether or not the node waits;
- nothing sent, or only refused with an error status: nothing (a release).

A model with several upstreams reserves that most once more per extra upstream (as far as
the balance holds it), so a failover after a timeout still has its earlier, billed attempts
covered by the reservation; when the balance cannot hold another, no further one is tried.
"""

from __future__ import annotations

import logging
import time
from typing import Any, NamedTuple

import aiohttp
import orjson
from aiohttp import web

from node.errors import (
    NodeError,
    PaymentRequired,
    UpstreamError,
)
from node.http.observe import trace_of
from node.http.web import REQUEST_ID
from node.money import records
from node.money.keys import Keys
from node.money.ledger import Cap, Ledger
from node.money.payments import Payer, token_spent
from node.money.records import Record, Records
from node.pricing import billing
from node.pricing.model import Model, Route
from node.pricing.prices import Pricer, Usage
from node.proxy import dress, upstream
from node.proxy.call_stream import StreamRelay
from node.proxy.meters import UNLIMITED_MSAT, Measured, Meter, Plan
from node.proxy.providers import ProviderMonitor
from node.proxy.stored import Recorder, StoredObjects
from node.proxy.wires import Wire, wire_for
from wallet.store import Connection

log = logging.getLogger("nutgate.proxy")

NO_USAGE = Usage()  # a record's counts when nothing was produced (frozen: one will do)


class CallParts(NamedTuple):
    """The node's parts one metered call uses, read from the registry once (node.parts): the
    same pricer prices its quote, its reservation and its settlement, whatever the admin
    saves meanwhile."""

    ledger: Ledger
    pricer: Pricer
    monitor: ProviderMonitor
    http: aiohttp.ClientSession
    stored: StoredObjects
    records: Records
    keys: Keys


class MeteredCall(StreamRelay):
    """One paid upstream call on behalf of `payer`, priced by `meter`."""

    def __init__(
        self, parts: CallParts, request: web.Request, payer: Payer, model: Model, meter: Meter
    ) -> None:
        self.parts, self.request, self.payer, self.model = parts, request, payer, model
        self.meter, self.path = meter, meter.path
        self.pricer = parts.pricer  # one price from reserving to settling
        self.request_id = request[REQUEST_ID]
        self.record_id = self.request_id  # its record's id (a fallback's later calls: id.n)
        self.trace = trace_of(request)
        self.trace.model = model.id
        self.cost_msat = 0
        self.measured = Measured()
        self.produced = False  # the upstream answered: something must be charged
        self.oversized = False  # the answer passed the read limit: it was all written and billed
        self.unfinished = False  # the client went away and its stream was not read to its end
        self.attempts: list[upstream.Attempt] = []  # one per upstream tried, the last current
        self.spare_attempts = 0  # failed attempts the reservation covers beyond the answer
        self.reserved_msat = 0
        self.settled = False
        self.reserving = False
        self.route: Route | None = None  # the one that answered
        self.complete = False  # the whole answer was read and is being sent
        self.started_at, self.started = int(time.time()), time.perf_counter()
        self.wire: Wire | None = None  # how it was spoken to (node/proxy/wires.py)
        self.recorder: Recorder | None = None  # the stored objects the answer makes
        self.usage_asked = True  # a stream's client asked for the usage chunk (include_usage)

    @property
    def usage(self) -> Usage | None:
        """The upstream's usage, once known (None: none reported, an estimate is charged)."""
        return self.measured.usage

    async def run(self, body: dict[str, Any], raw: bytes) -> web.StreamResponse:
        stream = self.meter.streams and bool(body.get("stream"))
        self.recorder = Recorder.of(self.parts.stored, self.payer, self.path, body)
        asked = body.get("model")
        self.asked_model = asked if isinstance(asked, str) else self.model.id
        try:
            self.plan = await self._reserve(body, raw)
            if stream:
                self.usage_asked = self.meter.prepare_stream(body)
            answer = await self._first_answer(body, stream)
            if stream:
                return await self._stream(answer)
            return await self._plain(answer)
        except NodeError as exc:
            await self._settle()
            if self.cost_msat:  # an attempt the upstream bills: the client sees what it cost
                exc.headers["X-Cost-Msat"] = str(self.cost_msat)
            raise
        finally:
            await self._settle()

    async def _reserve(self, body: dict[str, Any], raw: bytes) -> Plan:
        """Plan as if the balance were unlimited and reserve that, which saves reading the
        balance on the usual path; only if the account cannot hold it, read what it has and
        plan within that. A key with a spending limit reserves within it too, in the same
        write (`Cap`); when the limit is what is short, the refusal names it."""
        payer = self.payer
        caps = [] if payer.key is None else self.parts.keys.admit(payer.key, self.model.id)
        available: int | None = None
        tightest: Cap | None = None  # the key's limit, not the balance, is what is short
        while True:
            try:
                plan = self._plan(body, raw, available)
                if await self.parts.ledger.reserve(
                    payer.account_id,
                    self.request_id,
                    self.reserved_msat,
                    plan.floor_msat,
                    self.model.id,
                    payer.untouched_msat,
                    payer.key_id,
                    caps,
                ):
                    return plan
                if available is not None:
                    raise PaymentRequired(
                        "insufficient balance: the balance is held by other requests"
                    )
            except PaymentRequired as exc:
                if tightest is not None:
                    raise _over_limit(tightest, exc, payer.key_id) from None
                raise
            available, tightest = self._available(caps)

    def _plan(self, body: dict[str, Any], raw: bytes, available: int | None) -> Plan:
        limit = UNLIMITED_MSAT if available is None else available
        plan = self.meter.plan(self.pricer, self.model, body, raw, limit)
        self.spare_attempts = self._spare_attempts(plan, available)
        self.reserved_msat = plan.max_cost_msat * (1 + self.spare_attempts)
        self.reserving = True  # the reservation may exist from here, even if cancelled
        return plan

    def _available(self, caps: list[Cap]) -> tuple[int, Cap | None]:
        """What the payer may still reserve, and the key's cap that bounds it, if one does."""
        ledger, payer = self.parts.ledger, self.payer
        account = ledger.get(payer.account_id)
        if payer.untouched_msat is not None and not account.untouched(payer.untouched_msat):
            raise token_spent()  # a racing request with the same one-shot token got there
        available, tightest = account.available_msat, None
        for cap in caps:
            left = cap.limit_msat - ledger.cap_spent(cap)
            if left < available:
                available, tightest = left, cap
        return available, tightest

    def _spare_attempts(self, plan: Plan, available: int | None) -> int:
        """How many failed attempts the upstreams may bill beyond the answer: one per extra
        upstream, as far as the balance (when it is short) holds their most each."""
        spare = len(self.model.routes) - 1
        if available is None or not plan.max_cost_msat:
            return spare
        return max(0, min(spare, (available - plan.max_cost_msat) // plan.max_cost_msat))

    async def _first_answer(self, body: dict[str, Any], stream: bool) -> upstream.Answer:
        """Try the model's upstreams in turn (healthy ones first) until one answers, while the
        reservation covers the attempts that failed after being sent."""
        last: NodeError | None = None
        for route in self.parts.monitor.order(self.model.routes):
            if sum(a.sent for a in self.attempts) > self.spare_attempts:
                break  # another billed attempt would pass the reservation
            wire = wire_for(self.meter, self.model, route, body, self.request.headers)
            if wire is None:  # an upstream that cannot serve this endpoint
                continue
            attempt = upstream.Attempt()
            self.attempts.append(attempt)
            body["model"] = route.upstream_model
            sent = body
            if wire.path == self.path and route.upstream.kind != "anthropic":
                sent = billing.for_upstream(self.path, body, route.upstream)
            payload, content_type = wire.encode(sent)
            self.trace.upstream = route.upstream.name
            try:
                with self.trace.upstream_call():
                    answer = await upstream.call(
                        self.parts.http,
                        route.upstream,
                        wire.path,
                        payload,
                        stream=stream,
                        content_type=content_type,
                        attempt=attempt,
                        extra_headers=wire.headers,
                    )
            except upstream.AnswerTooLarge:
                self.oversized = True
                raise
            except upstream.RETRYABLE as exc:
                self.trace.upstream_failed(exc.code)
                log.warning("request %s: %s; trying the next upstream", self.request_id, exc)
                last = exc
                continue
            self.route, self.wire = route, wire
            return answer
        if last is None:  # no upstream of the model serves this endpoint (the route checks)
            raise UpstreamError("no upstream of this model serves this endpoint")
        raise last

    async def _settle(self) -> None:
        if self.settled:
            return
        self.settled = True
        if not self.reserving:
            return
        cost = self._cost()
        if cost is None:
            await self.parts.ledger.release(self.request_id, self._record)
            return
        self.cost_msat = self.trace.cost_msat = await self.parts.ledger.settle(
            self.request_id, cost, self._record
        )
        if self.produced and self.measured.usage is None and self.measured.units is None:
            log.warning("request %s: no usage from upstream, charged an estimate", self.request_id)

    def _record(self, conn: Connection, charged_msat: int) -> None:
        """The request's record, written in its settlement's transaction."""
        if self.produced:
            usage = self.measured.usage or Usage(
                self.plan.prompt_tokens, self.measured.output_tokens
            )
        else:
            usage = NO_USAGE
        status = records.OK if self.complete else records.FAILED
        if self.produced and not self.complete:
            status = records.INCOMPLETE
        record = Record(
            self.record_id,
            self.payer.account_id,
            self.payer.key_id,
            self.started_at,
            self.path,
            self.model.id,
            self.trace.upstream,
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cached_tokens,
            usage.reasoning_tokens,
            charged_msat,
            status,
            int((time.perf_counter() - self.started) * 1000),
        )
        self.parts.records.write(conn, record)

    def _cost(self) -> int | None:
        """What the upstreams may bill for this request; None when they bill nothing.

        The last attempt is the current one; each earlier one failed, and is charged the
        reservation's most if it was sent."""
        if not self.attempts:
            return None
        *failed, last = self.attempts
        earlier = sum(self._failed_cost(a) for a in failed)
        if self.produced and not (self.unfinished and not self.measured.final):
            return earlier + self.meter.cost(self.pricer, self.model, self.plan, self.measured)
        if self.produced or self.oversized:
            return earlier + self.plan.max_cost_msat
        if last.sent:
            return earlier + self._failed_cost(last)
        return earlier if earlier else None

    def _failed_cost(self, attempt: upstream.Attempt) -> int:
        """What an upstream may bill for a call that gave no answer: nothing unless it was
        sent; its prompt if it ended its answer empty; else the most the answer could cost."""
        if not attempt.sent:
            return 0
        return self.plan.floor_msat if attempt.ended else self.plan.max_cost_msat

    async def _plain(self, answer: upstream.Answer) -> web.StreamResponse:
        parsed = dress.json_object(answer.head)
        if parsed is None and ("json" in answer.content_type or not self.meter.text_answers):
            raise UpstreamError("upstream answered with malformed JSON")
        self.produced = self.complete = True
        if parsed is None:  # a transcription as text, srt or vtt: passed on as it came
            self.measured = self.meter.measure_text(answer.head)
            await self._settle()
            headers = {"X-Cost-Msat": str(self.cost_msat), **await self.payer.finish()}
            return web.Response(body=answer.head, headers=headers, content_type=dress.mime(answer))
        assert self.wire is not None
        self.measured = self.wire.measure(parsed)
        await self._settle()
        if self.recorder is not None:  # before the client sees the ids it may name later
            await self.recorder.note(parsed)
        parsed = self.wire.answer(parsed)
        usage_out = parsed.get("usage") if isinstance(parsed.get("usage"), dict) else None
        if usage_out is None:
            usage_out = parsed["usage"] = self.meter.usage_json(self.plan, self.measured)
        self.meter.answer_out(parsed)  # the legacy `functions` format, for a caller who used it
        cost = self._cost_fields()
        usage_out.update(cost)
        if isinstance(parsed.get("model"), str):  # the model as the client named it
            parsed["model"] = self.asked_model
        headers = {**self._cost_headers(cost.get("cost")), **await self.payer.finish()}
        headers["X-Model"] = self.model.id  # the model charged for (a router's choice)
        return web.Response(
            body=orjson.dumps(parsed), headers=headers, content_type="application/json"
        )

    def _cost_fields(self) -> dict[str, Any]:
        return dress.cost_fields(self.pricer, self.cost_msat)

    def _cost_headers(self, usd: float | None) -> dict[str, str]:
        seen = self.measured.usage
        prompt = seen.prompt_tokens if seen is not None else self.plan.prompt_tokens
        cached = seen.cached_tokens if seen is not None else 0
        return dress.cost_headers(self.pricer, self.model, self.cost_msat, prompt, cached, usd)


def _over_limit(cap: Cap, short: PaymentRequired, key_id: int | None) -> PaymentRequired:
    """A refusal naming the key's spending limit, when it is what stands in the way."""
    whose = "this key's" if cap.key_id == key_id else "its parent key's"
    return PaymentRequired(
        f"{whose} spending limit of {cap.limit_msat} msat is reached for its period "
        f"({short.message})",
        code="key_limit_reached",
    )
