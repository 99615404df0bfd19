"""A paid call: plan the most it can cost, reserve that, forward, charge the real cost.

    plan (prompt estimate + max output)  ->  ledger.reserve  ->  upstream  ->  ledger.settle

Whatever happens after the reservation — success, upstream failure, a client that goes away,
an exception — the `finally` of `run` settles it: real cost from the upstream's usage, else an
estimate from what was sent and received, else (nothing was produced) a release.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from node import upstream
from node.catalogue import Model
from node.context import Node
from node.errors import BadRequest, NodeError, PaymentRequired, UpstreamError, UpstreamTimeout
from node.payments import Payer
from node.pricing import Usage
from node.sse import SseReader, encode_event, output_chars
from node.web import REQUEST_ID

log = logging.getLogger("nutgate.proxy")

MIN_ANSWER_TOKENS = 16  # fewer than this affordable: refuse rather than cut an answer to nothing


@dataclass
class Plan:
    prompt_tokens: int  # an estimate that errs high
    max_output_tokens: int
    max_cost_msat: int
    floor_msat: int  # the prompt's cost: charged if the node dies mid-request
    choices: int = 1


def estimate_prompt_tokens(raw_body: bytes) -> int:
    # Tokens average ~4 bytes of JSON text; counting the whole body (keys, tools) errs high.
    return len(raw_body) // 4 + 16


def plan_request(
    node: Node, model: Model, body: dict[str, Any], raw: bytes, available: int
) -> Plan:
    limit_field = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    requested = body.get(limit_field)
    if requested is None:
        requested = model.max_output_tokens
    elif not isinstance(requested, int) or isinstance(requested, bool) or requested < 1:
        raise BadRequest(f"{limit_field} must be a positive integer", param=limit_field)
    choices = body.get("n", 1)
    if not isinstance(choices, int) or isinstance(choices, bool) or not 1 <= choices <= 128:
        raise BadRequest("n must be an integer from 1 to 128", param="n")
    prompt = estimate_prompt_tokens(raw)
    wanted = min(requested, model.max_output_tokens)
    affordable = node.pricer.completion_tokens_affordable(model.price, prompt, available)
    affordable //= choices
    if affordable < min(MIN_ANSWER_TOKENS, wanted):
        need = node.pricer.cost_msat(model.price, Usage(prompt, min(MIN_ANSWER_TOKENS, wanted)))
        raise PaymentRequired(
            f"insufficient balance: this request needs at least {need} msat, "
            f"{max(available, 0)} msat available",
            headers={"X-Required-Msat": str(need)},
        )
    output = min(wanted, affordable)
    body[limit_field] = output  # the upstream must not produce more than was reserved
    return Plan(
        prompt_tokens=prompt,
        max_output_tokens=output,
        max_cost_msat=node.pricer.cost_msat(model.price, Usage(prompt, output * choices)),
        floor_msat=node.pricer.cost_msat(model.price, Usage(prompt, 0)),
        choices=choices,
    )


def full_cost_msat(node: Node, model: Model, body: dict[str, Any], raw: bytes) -> int:
    """The most this request can cost, as asked (for a 402's payment request)."""
    return plan_request(node, model, dict(body), raw, available=1 << 62).max_cost_msat


class MeteredCall:
    """One paid upstream call on behalf of `payer`."""

    def __init__(
        self, node: Node, request: web.Request, payer: Payer, model: Model, path: str
    ) -> None:
        self.node, self.request, self.payer, self.model, self.path = (
            node,
            request,
            payer,
            model,
            path,
        )
        self.request_id = request[REQUEST_ID]
        self.cost_msat = 0
        self.usage: Usage | None = None
        self.est_output_tokens = 0
        self.produced = False  # the upstream answered: something must be charged
        self.settled = False

    async def run(self, body: dict[str, Any], raw: bytes) -> web.StreamResponse:
        account = self.node.ledger.get(self.payer.account_id)
        plan = plan_request(self.node, self.model, body, raw, account.available_msat)
        if not self.node.ledger.reserve(
            account.id, self.request_id, plan.max_cost_msat, plan.floor_msat, self.model.id
        ):
            raise PaymentRequired("insufficient balance: the balance is held by other requests")
        self.plan = plan
        body["model"] = self.model.upstream_model
        stream = bool(body.get("stream"))
        if stream:
            options = body.get("stream_options")
            body["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        try:
            if stream:
                return await self._stream(orjson.dumps(body))
            return await self._plain(orjson.dumps(body))
        finally:
            self._settle()

    def _settle(self) -> None:
        if self.settled:
            return
        self.settled = True
        if not self.produced:
            self.node.ledger.release(self.request_id)
            return
        usage = self.usage or Usage(self.plan.prompt_tokens, self.est_output_tokens)
        cost = self.node.pricer.cost_msat(self.model.price, self._bounded(usage))
        self.cost_msat = self.node.ledger.settle(self.request_id, cost)
        if self.usage is None:
            log.warning("request %s: no usage from upstream, charged an estimate", self.request_id)

    def _bounded(self, usage: Usage) -> Usage:
        """Usage no larger than the request allowed (prompt within the model's context, output
        within what was asked): an upstream reporting absurd counts cannot drain an account."""
        prompt = min(usage.prompt_tokens, max(self.model.context_length, self.plan.prompt_tokens))
        most_output = self.plan.max_output_tokens * self.plan.choices
        completion = min(usage.completion_tokens, most_output)
        return Usage(
            prompt,
            completion,
            min(usage.cached_tokens, prompt),
            min(usage.reasoning_tokens, completion),
        )

    async def _plain(self, payload: bytes) -> web.StreamResponse:
        resp = await upstream.post(self.node.http, self.model.upstream, self.path, payload)
        async with resp:
            try:
                raw = await resp.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise UpstreamError("upstream connection failed mid-answer") from exc
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError("upstream answered with malformed JSON") from exc
        if not isinstance(answer, dict):
            raise UpstreamError("upstream answered with an unexpected body")
        self.produced = True
        self.usage = Usage.from_openai(answer.get("usage"))
        self.est_output_tokens = -(-output_chars(answer.get("choices"), "message") // 4)
        self._settle()
        usage_out = answer.get("usage") if isinstance(answer.get("usage"), dict) else None
        if usage_out is None:
            usage_out = self._estimated_usage()
            answer["usage"] = usage_out
        usage_out["cost_msat"] = self.cost_msat
        headers = {"X-Cost-Msat": str(self.cost_msat), **await self.payer.finish(self)}
        return web.Response(
            body=orjson.dumps(answer), headers=headers, content_type="application/json"
        )

    def _estimated_usage(self) -> dict[str, Any]:
        prompt, completion = self.plan.prompt_tokens, self.est_output_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "estimated": True,
        }

    async def _stream(self, payload: bytes) -> web.StreamResponse:
        resp = await upstream.post(self.node.http, self.model.upstream, self.path, payload)
        self.produced = True  # the prompt went upstream and is being answered
        reader = SseReader()
        out = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        async with resp:
            await out.prepare(self.request)
            try:
                async for data in resp.content.iter_any():
                    for event in reader.feed(data):
                        await out.write(event)
            except ConnectionResetError:
                self._note(reader)
                log.info("request %s: client went away mid-stream", self.request_id)
                return out
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._note(reader)
                self._settle()  # before the client can see the error
                error = _error_event(exc) | await self.payer.finish(self, in_band=True)
                await self._write_safely(out, encode_event(error))
                return out
        self._note(reader)
        await self._end_stream(out, reader)
        return out

    def _note(self, reader: SseReader) -> None:
        self.usage = reader.usage
        self.est_output_tokens = reader.estimated_output_tokens()

    async def _end_stream(self, out: web.StreamResponse, reader: SseReader) -> None:
        """Settle, then send the usage chunk with the cost (and any change), then [DONE]."""
        self._settle()
        final = reader.usage_event or {
            "object": "chat.completion.chunk",
            "choices": [],
            "usage": self._estimated_usage(),
        }
        final.setdefault("usage", self._estimated_usage())["cost_msat"] = self.cost_msat
        final.update(await self.payer.finish(self, in_band=True))
        await self._write_safely(out, encode_event(final) + b"data: [DONE]\n\n")

    async def _write_safely(self, out: web.StreamResponse, data: bytes) -> None:
        try:
            await out.write(data)
            await out.write_eof()
        except ConnectionResetError:
            log.info("request %s: client went away before the stream's end", self.request_id)


def _error_event(exc: BaseException) -> dict[str, Any]:
    error: NodeError = (
        UpstreamTimeout("upstream stopped sending")
        if isinstance(exc, TimeoutError)
        else UpstreamError("upstream connection failed mid-stream")
    )
    return error.envelope()
