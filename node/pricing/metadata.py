"""What /v1/models, /v1/models/{id} and /v1/catalog say of a model beyond its price
(OpenRouter's field names): name, description, architecture, supported parameters, created.

The operator's [[models]] name and description come first, then what the upstream's listing
gives, then what the node knows from how the model is priced (an image model makes images, an
audio model reads audio).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from node.pricing.model import Model
from node.pricing.prices import Pricer, Usage

CHAT_PARAMETERS = [
    "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "seed", "n",
    "frequency_penalty", "presence_penalty", "logit_bias", "logprobs", "top_logprobs",
    "response_format", "tools", "tool_choice", "parallel_tool_calls", "functions",
    "function_call", "stream", "stream_options", "user",
]  # fmt: skip
IMAGE_PARAMETERS = ["n", "size", "quality", "style", "background", "output_format", "user"]
AUDIO_PARAMETERS = ["language", "prompt", "response_format", "temperature"]

# Botstrapp's tiers, by what a typical message (1000 tokens in, 500 out) costs in USD.
TYPICAL = Usage(1000, 500)
TIERS = ((Fraction(1, 100), "budget"), (Fraction(3, 100), "standard"))


def modalities(model: Model) -> tuple[list[str], list[str]]:
    """(input, output) modalities."""
    if model.token_priced:
        inputs, outputs = ["text"], ["text"]
    else:
        inputs, outputs = ["text"], []
    if model.image_usd is not None:
        outputs.append("image")
    if model.audio_minute_usd is not None:
        inputs.append("audio")
        outputs = outputs or ["text"]
    listed = _listed(model).get("architecture")
    if isinstance(listed, dict):
        given_in, given_out = listed.get("input_modalities"), listed.get("output_modalities")
        inputs = _strings(given_in) or inputs
        outputs = _strings(given_out) or outputs
    return inputs, outputs


def describe(model: Model) -> dict[str, Any]:
    """The OpenRouter-style fields of one model."""
    listed = _listed(model)
    inputs, outputs = modalities(model)
    parameters = _strings(listed.get("supported_parameters")) or _parameters(model)
    created = listed.get("created")
    name = model.name or _text(listed.get("name")) or model.id
    about: dict[str, Any] = {
        "name": name,
        "description": model.description or _text(listed.get("description")),
        "architecture": {
            "modality": f"{'+'.join(inputs)}->{'+'.join(outputs)}",
            "input_modalities": inputs,
            "output_modalities": outputs,
        },
        "supported_parameters": parameters,
    }
    if isinstance(created, int) and not isinstance(created, bool) and created > 0:
        about["created"] = created
    return about


def tier(pricer: Pricer, model: Model) -> str:
    """budget, standard or premium, by the USD a typical message costs (the markup included)."""
    usd = typical_usd(pricer, model)
    return next((name for bound, name in TIERS if usd < bound), "premium")


def typical_usd(pricer: Pricer, model: Model) -> Fraction:
    price = model.price.for_prompt(TYPICAL.prompt_tokens)
    usd = price.request
    if model.token_priced:
        usd += price.prompt * TYPICAL.prompt_tokens + price.completion * TYPICAL.completion_tokens
    return usd * pricer.markup


def _parameters(model: Model) -> list[str]:
    if model.token_priced:
        return list(CHAT_PARAMETERS)
    if model.image_usd is not None:
        return list(IMAGE_PARAMETERS)
    return list(AUDIO_PARAMETERS)


def _listed(model: Model) -> dict[str, Any]:
    return dict(model.about)


def _strings(value: Any) -> list[str]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return []


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
