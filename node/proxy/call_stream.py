"""The streamed half of a metered call: the upstream's events relayed as they come, the cost
and any change sent in the stream's end, and a stream the client left read out for its usage.

`StreamRelay` is a part of `node.proxy.call.MeteredCall`: the call's state it reads and sets
is declared here, and the call provides it (with `_settle` and `_cost_fields`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from aiohttp import web

from node.http.observe import Trace
from node.money.payments import Payer
from node.pricing.model import Model, Route
from node.proxy import dress, upstream
from node.proxy.meters import Measured, Meter, Plan
from node.proxy.sse import SseReader
from node.proxy.stored import Recorder
from node.proxy.wires import StreamReader, Wire

log = logging.getLogger("nutgate.proxy")

DRAIN_S = 600.0  # how long a stream the client dropped is read on for its usage


class StreamRelay:
    request: web.Request
    request_id: str
    path: str
    meter: Meter
    model: Model
    payer: Payer
    trace: Trace
    plan: Plan
    measured: Measured
    wire: Wire | None
    route: Route | None
    recorder: Recorder | None
    asked_model: str
    usage_asked: bool
    produced: bool
    complete: bool
    unfinished: bool

    async def _settle(self) -> None:
        raise NotImplementedError

    def _cost_fields(self) -> dict[str, Any]:
        raise NotImplementedError

    async def _stream(self, answer: upstream.Answer) -> web.StreamResponse:
        self.produced = True  # the prompt went upstream and is being answered
        assert self.wire is not None
        reader = self.wire.reader(self.plan)
        out = dress.EventStream(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Model": self.model.id,
            }
        )
        chunks = upstream.Chunks(answer.upstream, answer.resp)
        async with answer.resp:
            await out.prepare(self.request)
            try:  # the events of one upstream chunk leave in one write
                reshape = self.meter.event_out if self.meter.reshapes_events else None
                was = self.route.upstream_model if self.route is not None else self.asked_model
                relay = dress.relayer(out, reader, self.recorder, reshape, (was, self.asked_model))
                await relay(answer.head)
                async for data in chunks:
                    await relay(data)
                last = reader.close()  # an upstream may end without the last blank line
                if last:
                    await out.write(b"".join(last))
            except ConnectionResetError:
                log.info("request %s: client went away mid-stream", self.request_id)
                await self._drain(answer, reader)
                return out
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._note(reader)
                await self._settle()  # before the client can see the error
                self.trace.upstream_failed("upstream_stream_broken")
                extras = await self.payer.finish(in_band=True)
                await self._write_safely(out, reader.failure(dress.stream_error(exc), extras))
                return out
            finally:  # however the stream ends (cancelled at shutdown too), charge what was sent
                chunks.close()
                self.trace.upstream_s += chunks.waited_s
                self._note(reader)
        await self._end_stream(out, reader)
        return out

    async def _drain(self, answer: upstream.Answer, reader: StreamReader) -> None:
        """The client went away: read the rest of the upstream's stream, relaying nothing, for
        the usage it ends with. The upstream goes on writing (and billing) whether or not the
        node reads, so a stream that does not end within DRAIN_S, or breaks, before its final
        usage is charged the reservation: counts so far (an Anthropic stream's prompt and
        output before message_delta) are not what the upstream bills for the whole answer."""
        self.unfinished = True
        chunks = upstream.Chunks(answer.upstream, answer.resp)
        try:
            async with asyncio.timeout(DRAIN_S):
                async for data in chunks:
                    reader.feed(data)
                    if self.recorder is not None:
                        await self.recorder.note(reader.response)
            reader.close()
            self.unfinished = False
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("request %s: the dropped stream's rest was not read: %r", self.request_id, exc)
        finally:
            chunks.close()

    def _note(self, reader: StreamReader) -> None:
        self.measured = Measured(
            reader.usage, output_tokens=reader.estimated_output_tokens(), final=reader.usage_final
        )

    async def _end_stream(self, out: web.StreamResponse, reader: StreamReader) -> None:
        """Settle, then send the stream's end with the cost (and any change)."""
        self.complete = True
        await self._settle()
        fallback = self.meter.usage_json(self.plan, self.measured)
        if isinstance(reader, SseReader):  # an OpenAI stream: the model asked, a last choice
            closing = (
                None if self.usage_asked else dress.closing_choice(self.path, reader.finish_reason)
            )
            reader.dress(self.asked_model, closing, self.meter.event_out)
        extras = await self.payer.finish(in_band=True)
        await self._write_safely(out, reader.ending(self._cost_fields(), extras, fallback))

    async def _write_safely(self, out: web.StreamResponse, data: bytes) -> None:
        try:
            await out.write(data)
            await out.write_eof()
        except ConnectionResetError:
            log.info("request %s: client went away before the stream's end", self.request_id)
