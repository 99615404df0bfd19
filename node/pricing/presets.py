"""Presets, "systems as models": `preset/<name>` is a model plus a system prompt and defaults.

The preset's system prompt goes first; the client's own messages (its system message too)
follow, so per-request guidance layers on top of the operator's. Default parameters fill only
what the client left out.
"""

from __future__ import annotations

from typing import Any

from node.errors import BadRequest
from node.pricing.model import Model


def apply(model: Model, body: dict[str, Any], endpoint: str) -> None:
    """Layer `model.preset` (if any) onto a chat or responses request body, in place."""
    preset = model.preset
    if preset is None:
        return
    for key, value in preset.params.items():
        body.setdefault(key, value)
    if not preset.system_prompt:
        return
    system = {"role": "system", "content": preset.system_prompt}
    if endpoint == "chat/completions":
        body["messages"] = [system, *body["messages"]]
    elif endpoint == "messages":
        given = body.get("system")
        given = [{"type": "text", "text": given}] if isinstance(given, str) else given
        own = [{"type": "text", "text": preset.system_prompt}]
        body["system"] = own + (given if isinstance(given, list) else [])
    elif endpoint == "responses":
        given = body.get("input")
        given = [{"role": "user", "content": given}] if isinstance(given, str) else given
        body["input"] = [system, *(given if isinstance(given, list) else [])]
    else:
        raise BadRequest(
            f"preset {model.id!r} serves chat/completions, messages and responses only",
            param="model",
            code="invalid_model_selector",
        )
