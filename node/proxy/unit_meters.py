"""Endpoints priced per unit — an image made, a second of audio — plus the model's price per
request; audio without a minute price falls back to tokens (see meters.py for the rest)."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from node.errors import BadRequest
from node.pricing import billing
from node.pricing.model import Model
from node.pricing.prices import Price, Pricer, Usage
from node.proxy.audio import Upload, encode_multipart, seconds_bound
from node.proxy.meters import Measured, Meter, Plan, need_token_price, short_of

AUDIO_TOKENS_PER_SECOND = 20  # errs high: OpenAI's audio models use ~10 input tokens a second


class _UnitMeter(Meter):
    """Priced per unit (image, second of audio), plus the model's per-request price."""

    def unit_usd(self, model: Model) -> Fraction:
        raise NotImplementedError

    def unit_cost(self, pricer: Pricer, model: Model, units: Fraction) -> int:
        usd = model.price.request + units * self.unit_usd(model)
        return pricer.cost_msat(Price(Fraction(0), Fraction(0), request=usd), Usage())

    def cost(self, pricer: Pricer, model: Model, plan: Plan, seen: Measured) -> int:
        # No more than reserved: an upstream reporting absurd units cannot drain an account.
        units = plan.units if seen.units is None else min(seen.units, plan.units)
        return self.unit_cost(pricer, model, units)


class ImagesMeter(_UnitMeter):
    path = "images/generations"

    def unit_usd(self, model: Model) -> Fraction:
        assert model.image_usd is not None
        return model.image_usd

    def plan(
        self, pricer: Pricer, model: Model, body: dict[str, Any], raw: bytes, available: int
    ) -> Plan:
        if model.image_usd is None:
            raise BadRequest(
                f"the model {model.id!r} has no per-image price on this node",
                param="model",
                code="model_not_priced",
            )
        if body.get("stream"):
            raise BadRequest("streamed image generation is not offered", param="stream")
        images = Fraction(billing.positive_int(body, "n", 1, 10))
        cost = self.unit_cost(pricer, model, images)
        if cost > available:
            raise short_of(cost, available)
        return Plan(0, 0, cost, 0, units=images)

    def measure(self, answer: dict[str, Any]) -> Measured:
        data = answer.get("data")
        return Measured(units=Fraction(len(data)) if isinstance(data, list) else None)

    def usage_json(self, plan: Plan, seen: Measured) -> dict[str, Any]:
        return {"images": int(seen.units if seen.units is not None else plan.units)}


class AudioMeter(_UnitMeter):
    """Transcriptions and translations: per minute when the model has a minute price, else by
    token."""

    text_answers = True  # response_format text, srt, vtt
    usage_names = ("input_tokens", "output_tokens")

    def __init__(
        self, fields: list[tuple[str, str]], upload: Upload, path: str = "audio/transcriptions"
    ):
        self.fields, self.upload, self.path = fields, upload, path

    def unit_usd(self, model: Model) -> Fraction:
        return (model.audio_minute_usd or Fraction(0)) / 60

    def encode(self, body: dict[str, Any]) -> tuple[bytes, str]:
        fields = [(k, v) for k, v in self.fields if k != "model"] + [("model", body["model"])]
        return encode_multipart(fields, [self.upload])

    def plan(
        self, pricer: Pricer, model: Model, body: dict[str, Any], raw: bytes, available: int
    ) -> Plan:
        # Once sent, the clip is decoded and billed whatever follows: its cost is the floor.
        seconds = math.ceil(seconds_bound(self.upload.data, model.max_audio_seconds)[0])
        if model.audio_minute_usd is not None:
            units = Fraction(seconds)  # upstreams bill whole seconds
            cost = self.unit_cost(pricer, model, units)
            if cost > available:
                raise short_of(cost, available)
            return Plan(0, 0, cost, cost, units=units)
        need_token_price(model)
        # the audio's tokens, and the text of a `prompt` field (a token a byte at most)
        text = sum(len(v.encode()) for k, v in self.fields if k == "prompt")
        prompt = seconds * AUDIO_TOKENS_PER_SECOND + 16 + text
        output = model.max_output_tokens
        cost = pricer.cost_msat(model.price, Usage(prompt, output))
        if cost > available:
            raise short_of(cost, available)
        floor = pricer.cost_msat(model.price, Usage(prompt, 0))
        return Plan(prompt, output, cost, floor, prompt_bound=prompt)

    def measure(self, answer: dict[str, Any]) -> Measured:
        usage = answer.get("usage")
        seconds = usage.get("seconds") if isinstance(usage, dict) else answer.get("duration")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            seconds = None
        text = answer.get("text")
        return Measured(
            usage=Usage.from_openai(usage),
            units=Fraction(str(seconds)) if seconds is not None else None,
            output_tokens=-(-len(text) // 4) if isinstance(text, str) else 0,
        )

    def cost(self, pricer: Pricer, model: Model, plan: Plan, seen: Measured) -> int:
        if model.audio_minute_usd is not None:
            return super().cost(pricer, model, plan, seen)
        return Meter.cost(self, pricer, model, plan, seen)
