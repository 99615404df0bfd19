"""How each endpoint is priced: the most a request can cost, and what its answer cost.

    ChatMeter        chat/completions, completions, responses   tokens in and out
    MessagesMeter    messages (Anthropic's)                     tokens in (four kinds) and out
    EmbeddingsMeter  embeddings                                  tokens in
    ImagesMeter      images/generations                          per image made (unit_meters.py)
    AudioMeter       audio/transcriptions, audio/translations    per minute, or tokens (ditto)

`plan` runs before the reservation (and caps the answer so it cannot cost more than reserved);
`measure` reads the answer; `cost` prices what was measured, or an estimate when the upstream
said nothing. The proxy (node/proxy/call.py) does the rest the same way for all of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import orjson

from node.errors import BadRequest, PaymentRequired
from node.pricing import billing, messages_billing
from node.pricing.model import Model
from node.pricing.prices import Price, Pricer, Usage
from node.proxy.sse import output_chars

_REASONING = re.compile(r"^(o\d|gpt-5)")  # OpenAI's reasoning models, by id
MIN_ANSWER_TOKENS = 16  # fewer than this affordable: refuse rather than cut an answer to nothing


@dataclass
class Plan:
    prompt_tokens: int  # charged when the answer has no usage, and the floor: an estimate
    # from the bytes, or the bound when the bytes do not hold the prompt's tokens
    max_output_tokens: int
    max_cost_msat: int
    floor_msat: int  # the prompt's cost: charged if the node dies mid-request
    units: Fraction = Fraction(0)  # images or audio seconds the reservation covers
    choices: int = 1  # answers written in all (n, best_of, prompts), each up to max_output_tokens
    prompt_bound: int = 0  # the most prompt tokens reserved, and ever charged (pricing/billing.py)


@dataclass
class Measured:
    usage: Usage | None = None  # as the upstream reported it
    units: Fraction | None = None  # images made / seconds transcribed, as reported
    output_tokens: int = 0  # estimated from the text received: read only when usage is None
    # False: a stream's usage so far (none yet, or Anthropic's counts before message_delta),
    # not the upstream's final count, which a stream that breaks never gives
    final: bool = True


def bounded(usage: Usage, model: Model, plan: Plan) -> Usage:
    """Usage no larger than the request allowed — prompt within its bound, output within what
    was asked — so an upstream reporting absurd counts cannot drain an account."""
    prompt = min(usage.prompt_tokens, max(plan.prompt_bound, plan.prompt_tokens))
    completion = min(usage.completion_tokens, plan.max_output_tokens * plan.choices)
    cached = min(usage.cached_tokens, prompt)
    return Usage(
        prompt,
        completion,
        cached,
        min(usage.reasoning_tokens, completion),
        min(usage.cache_write_tokens, prompt - cached),
    )


UNLIMITED_MSAT = 1 << 62  # a balance to plan with when the real one does not matter


def estimate_prompt_tokens(raw_body: bytes) -> int:
    # Tokens average ~4 bytes of JSON text; counting the whole body (keys, tools) errs high.
    return len(raw_body) // 4 + 16


def need_token_price(model: Model) -> None:
    if not model.token_priced:
        raise BadRequest(
            f"the model {model.id!r} is not priced per token on this node",
            param="model",
            code="model_not_priced",
        )


def short_of(need: int, available: int) -> PaymentRequired:
    return PaymentRequired(
        f"insufficient balance: this request needs at least {need} msat, "
        f"{max(available, 0)} msat available",
        headers={"X-Required-Msat": str(need)},
    )


class Meter:
    path = ""
    streams = False  # the endpoint can answer as server-sent events
    text_answers = False  # the endpoint may answer with something other than JSON
    usage_names = ("prompt_tokens", "completion_tokens")

    def plan(
        self, pricer: Pricer, model: Model, body: dict[str, Any], raw: bytes, available: int
    ) -> Plan:
        raise NotImplementedError

    def encode(self, body: dict[str, Any]) -> tuple[bytes, str]:
        return orjson.dumps(body), "application/json"

    def prepare_stream(self, body: dict[str, Any]) -> bool:
        """Ask the upstream for usage at the end of a stream; True if the client asked for it
        too (else it gets no chunk without choices: see MeteredCall._end_stream)."""
        return True

    def measure(self, answer: dict[str, Any]) -> Measured:
        return Measured(Usage.from_openai(answer.get("usage")))

    def answer_out(self, answer: dict[str, Any]) -> None:
        """Reshape a plain JSON answer for the client, in place, once it has been measured."""

    @property
    def reshapes_events(self) -> bool:
        """Whether event_out is more than the identity (the relay calls it only then)."""
        return type(self).event_out is not Meter.event_out

    def event_out(self, event: bytes) -> bytes:
        """Reshape one streamed event for the client, once it has been read."""
        return event

    def measure_text(self, raw: bytes) -> Measured:
        """A non-JSON answer (a transcription as text/srt/vtt): only its size is known."""
        return Measured(output_tokens=-(-len(raw) // 4))

    def cost(self, pricer: Pricer, model: Model, plan: Plan, seen: Measured) -> int:
        usage = seen.usage or Usage(plan.prompt_tokens, seen.output_tokens)
        return pricer.cost_msat(model.price, bounded(usage, model, plan))

    def usage_json(self, plan: Plan, seen: Measured) -> dict[str, Any]:
        """The usage to show when the upstream gave none (marked as an estimate)."""
        prompt, completion = plan.prompt_tokens, seen.output_tokens
        names = self.usage_names
        return {
            names[0]: prompt,
            names[1]: completion,
            "total_tokens": prompt + completion,
            "estimated": True,
        }


class ChatMeter(Meter):
    """Token-priced text generation: chat/completions, completions, responses."""

    streams = True
    cache_writes = False  # the prompt may be written to the upstream's cache (priced apart)

    def __init__(self, path: str = "chat/completions"):
        self.path = path
        self._read: tuple[Any, tuple[bool, int]] | None = None  # the prompt read last, and what
        if path == "responses":
            self.limit_fields: tuple[str, ...] = ("max_output_tokens",)
            self.usage_names = ("input_tokens", "output_tokens")
        elif path == "completions":
            self.limit_fields = ("max_tokens",)
        else:
            self.limit_fields = ("max_completion_tokens", "max_tokens")

    def plan(
        self, pricer: Pricer, model: Model, body: dict[str, Any], raw: bytes, available: int
    ) -> Plan:
        need_token_price(model)
        shape = self.shape(model, body)
        fields = [f for f in self.limit_fields if f in body] or [self._default_limit(model)]
        limits = [n for f in fields if (n := _output_limit(body, f)) is not None]
        requested = min(limits, default=model.max_output_tokens)
        choices = shape.answers
        bound = billing.prompt_bound(shape, len(raw), model.context_length, model.context_known)
        # Images, files, stored items: their tokens are not in the bytes; without usage, the bound
        prompt = bound if shape.unbounded else min(estimate_prompt_tokens(raw), bound)
        wanted = min(requested, model.max_output_tokens)
        writes = bound if self.cache_writes and _writes_dearer(model.price.for_prompt(bound)) else 0
        affordable = pricer.completion_tokens_affordable(model.price, bound, available, writes)
        affordable //= choices
        least = self.least_output(model, body, wanted)
        if affordable < least:
            shortest = Usage(bound, least * choices, cache_write_tokens=writes)
            raise short_of(pricer.cost_msat(model.price, shortest), available)
        output = min(wanted, affordable)
        for field in fields:  # an upstream may read any of them: none may pass the reservation
            body[field] = output
        most = Usage(bound, output * choices, cache_write_tokens=writes)
        return Plan(
            prompt_tokens=prompt,
            max_output_tokens=output,
            max_cost_msat=pricer.cost_msat(model.price, most),
            floor_msat=pricer.cost_msat(model.price, Usage(prompt, 0)),
            choices=choices,
            prompt_bound=bound,
        )

    def least_output(self, model: Model, body: dict[str, Any], wanted: int) -> int:
        """The fewest output tokens the request may be lowered to (`wanted`: the client's
        limit, at most the model's): less affordable is a 402."""
        return min(MIN_ANSWER_TOKENS, wanted)

    def _default_limit(self, model: Model) -> str:
        """The field the node sets when the client set none: OpenAI's reasoning models (o1,
        o3, o4-mini, gpt-5…) refuse `max_tokens` and take only `max_completion_tokens`."""
        if "max_completion_tokens" in self.limit_fields and _REASONING.match(
            model.upstream_model.rsplit("/", 1)[-1]
        ):
            return "max_completion_tokens"
        return self.limit_fields[-1]

    def shape(self, model: Model, body: dict[str, Any]) -> billing.Shape:
        _check_stream_fields(body)
        return billing.shape(self.path, body, self._reading)

    def _reading(self, prompt: Any, field: str, path: str) -> tuple[bool, int]:
        """A request's models share its prompt (node.routes.paid copies bodies shallowly): it
        is read once for them all, however many the client named."""
        if self._read is None or self._read[0] is not prompt:
            self._read = (prompt, billing.read_prompt(prompt, field, path))
        return self._read[1]

    def prepare_stream(self, body: dict[str, Any]) -> bool:
        if self.path == "responses":
            return True  # Responses streams end with response.completed, which carries usage
        options = body.get("stream_options")
        options = options if isinstance(options, dict) else {}
        asked = options.get("include_usage") is True
        body["stream_options"] = {**options, "include_usage": True}
        return asked

    def measure(self, answer: dict[str, Any]) -> Measured:
        usage = Usage.from_openai(answer.get("usage"))
        if usage is not None:  # the estimate stands in for a usage only: none is needed
            return Measured(usage)
        chars = output_chars(answer.get("choices"), "message") + _responses_chars(answer)
        return Measured(None, output_tokens=-(-chars // 4))


class MessagesMeter(ChatMeter):
    """Anthropic's Messages: `max_tokens` required (as Anthropic requires it), the prompt's
    cache reads and writes priced apart (node/pricing/messages_billing.py)."""

    cache_writes = True  # cache_control: the bound is reserved at the dearer price, if any

    def __init__(self, interleaved: bool = False) -> None:
        super().__init__("messages")
        self._readings = messages_billing.Readings()  # the request's, for every model it names
        self.limit_fields = ("max_tokens",)
        self.usage_names = ("input_tokens", "output_tokens")
        self.interleaved = interleaved  # the client's anthropic-beta asks for interleaved thinking

    def least_output(self, model: Model, body: dict[str, Any], wanted: int) -> int:
        """Anthropic refuses a thinking budget not below max_tokens (but with interleaved
        thinking and tools, where it spans the turn): a limit the client (or the model) sets
        there is the client's 400; one the balance would lower there, a 402."""
        least = super().least_output(model, body, wanted)
        thinking = body.get("thinking")
        if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
            return least
        budget = thinking.get("budget_tokens")  # an int: node.dialects.messages_check
        anthropic = any(route.upstream.kind == "anthropic" for route in model.routes)
        if not isinstance(budget, int) or not anthropic or (self.interleaved and body.get("tools")):
            return least
        if wanted <= budget:
            capped = wanted != body.get("max_tokens")  # the model's limit, below the client's
            most = f" (at most {wanted} on this model)" if capped else ""
            raise BadRequest(
                f"max_tokens{most} must be greater than thinking.budget_tokens ({budget})",
                param="max_tokens",
            )
        return max(least, budget + 1)

    def shape(self, model: Model, body: dict[str, Any]) -> billing.Shape:
        # the route checked the request's types first (node.dialects.messages_check)
        priced = model.price.cache_write is not None
        return messages_billing.messages_shape(body, priced, self._readings)

    def prepare_stream(self, body: dict[str, Any]) -> bool:
        """Anthropic's streams end with their usage (message_delta): nothing to ask."""
        return True

    def measure(self, answer: dict[str, Any]) -> Measured:
        return Measured(Usage.from_anthropic(answer.get("usage")))


def _check_stream_fields(body: dict[str, Any]) -> None:
    """The node reads these itself (whether to relay a stream, whether the client asked for
    its usage): a wrong type is the client's 400, not a guess ("yes" is not true)."""
    stream, options = body.get("stream"), body.get("stream_options")
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest("stream: a boolean is required", param="stream")
    if options is not None and not isinstance(options, dict):
        raise BadRequest("stream_options: an object is required", param="stream_options")


def _writes_dearer(price: Price) -> bool:
    return price.cache_write is not None and price.cache_write > price.prompt


def _output_limit(body: dict[str, Any], field: str) -> int | None:
    requested = body.get(field)
    if requested is not None and (
        not isinstance(requested, int) or isinstance(requested, bool) or requested < 1
    ):
        raise BadRequest(f"{field} must be a positive integer", param=field)
    return requested


def _responses_chars(answer: dict[str, Any]) -> int:
    total = 0
    output = answer.get("output")
    for item in output if isinstance(output, list) else []:
        if not isinstance(item, dict):
            continue
        total += len(str(item.get("arguments") or ""))
        content = item.get("content")
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                total += len(part["text"])
    return total


class EmbeddingsMeter(Meter):
    path = "embeddings"

    def plan(
        self, pricer: Pricer, model: Model, body: dict[str, Any], raw: bytes, available: int
    ) -> Plan:
        need_token_price(model)
        shape = billing.shape(self.path, body)
        bound = billing.prompt_bound(shape, len(raw), model.context_length, model.context_known)
        # Token-id inputs can be 2 bytes a token: count each number once more to err high.
        estimate = estimate_prompt_tokens(raw) + raw.count(b",")
        prompt = bound if shape.unbounded else min(estimate, bound)
        cost = pricer.cost_msat(model.price, Usage(bound, 0))
        if cost > available:
            raise short_of(cost, available)
        return Plan(
            prompt, 0, cost, pricer.cost_msat(model.price, Usage(prompt, 0)), prompt_bound=bound
        )

    def measure(self, answer: dict[str, Any]) -> Measured:
        return Measured(Usage.from_openai(answer.get("usage"), output=False))
