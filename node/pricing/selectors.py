"""Model selectors (ChatBotKit's): a `model` field that says what kind of target it names.

    model/name=<model>   a plain model, as if `<model>` had been given
    bot/id=<name>        a preset (`preset/<name>`): its system prompt, extended by the client's
    conversation/…       reserved: refused
    <kind>/<key>=…       any other selector: refused

Ids that are not selectors (`gpt-4o`, `openai/gpt-4o`, `preset/pirate`) pass unchanged.
"""

from __future__ import annotations

import re

from node.errors import BadRequest

PRESET_PREFIX = "preset/"
_SELECTOR = re.compile(r"([a-z_]+)/([a-z_]+)=(.*)", re.DOTALL)


def resolve(model_id: str) -> str:
    """The catalogue id a selector names; a 400 `invalid_model_selector` for one not served."""
    if model_id.startswith("conversation/"):
        raise _invalid(model_id, "conversation selectors are not served by this node")
    found = _SELECTOR.fullmatch(model_id)
    if found is None:
        return model_id
    kind, value = f"{found[1]}/{found[2]}", found[3]
    if kind == "model/name" and value and not _is_selector(value):
        return value
    if kind == "bot/id" and value and "/" not in value:
        return PRESET_PREFIX + value
    raise _invalid(model_id, "use model/name=<model> or bot/id=<preset>")


def _is_selector(value: str) -> bool:
    return (
        value.startswith((PRESET_PREFIX, "conversation/")) or _SELECTOR.fullmatch(value) is not None
    )


def _invalid(model_id: str, hint: str) -> BadRequest:
    shown = model_id if len(model_id) <= 80 else model_id[:80] + "…"
    return BadRequest(
        f"unsupported model selector {shown!r}: {hint}",
        param="model",
        code="invalid_model_selector",
    )
