"""A model as `GET /v1/models` lists it: OpenAI's fields, OpenRouter's and routstr-core's.

Prices are JSON numbers (routstr-core's clients compare `typeof === "number"` and drop a node
sending strings): `pricing` in USD per token, `sats_pricing` in sat per token with the markup,
and in `sats_pricing` the most a request can cost, which Routstr clients deposit:

    max_prompt_cost      a prompt filling the context
    max_completion_cost  the longest answer
    max_cost             the most this node reserves for one answer: a prompt filling the
                         context and the longest answer (so never below routstr-core's
                         (context - max output) x prompt + max output x completion)

Costs are in sat, rounded up, the request fee included, as the node charges them.
"""

from __future__ import annotations

from typing import Any

from node.errors import ServiceUnavailable
from node.pricing.model import Model
from node.pricing.prices import Pricer, Usage


def numbers(prices: dict[str, Any]) -> dict[str, Any]:
    """Decimal strings as JSON numbers."""
    return {k: float(v) if isinstance(v, str) else v for k, v in prices.items()}


def _sat(msat: int) -> int:
    return -(-msat // 1000)


def most_costs(pricer: Pricer, model: Model) -> dict[str, int]:
    """routstr-core's max_*_cost fields, in sat (ServiceUnavailable without a BTC rate)."""
    context, longest = model.context_length, model.max_output_tokens
    return {
        "max_prompt_cost": _sat(pricer.cost_msat(model.price, Usage(context, 0))),
        "max_completion_cost": _sat(pricer.cost_msat(model.price, Usage(0, longest))),
        "max_cost": _sat(pricer.cost_msat(model.price, Usage(context, longest))),
    }


def model_json(pricer: Pricer, model: Model) -> dict[str, Any]:
    entry = model.to_json(pricer.sats_pricing(model.price))
    entry["pricing"] = numbers(entry["pricing"])
    if "sats_pricing" in entry:
        try:
            entry["sats_pricing"] = numbers(entry["sats_pricing"]) | most_costs(pricer, model)
        except ServiceUnavailable:  # the rate went away since sats_pricing was read
            del entry["sats_pricing"]
    entry.setdefault("name", model.id)
    entry["top_provider"] = {
        "context_length": model.context_length,
        "max_completion_tokens": model.max_output_tokens,
        "is_moderated": False,
    }
    entry["architecture"] = {
        "modality": "text->text",
        "input_modalities": ["text"],
        "output_modalities": ["image"] if model.image_usd is not None else ["text"],
        "tokenizer": "Other",
        "instruct_type": None,
    }
    return entry
