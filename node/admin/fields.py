"""What the settings page shows of each setting: its description (from the settings model),
its kind, unit and choices, and when a change takes effect (see config.py); and the same of each
field of a [[models]] entry, for its editor on the upstreams page (all apply live)."""

from __future__ import annotations

import types
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from node.admin.config import NEXT_START, SECRETS, STARTUP_ONLY, TABLE_SECTIONS
from node.settings import Settings
from node.settings.catalogue import ModelSection

UNITS = [  # by the key's ending, first match
    ("_usd_per_mtok", "USD per million tokens"),
    ("_usd_per_minute", "USD per minute"),
    ("btc_usd", "USD per BTC"),
    ("_msat", "msat"),
    ("_sat", "sat"),
    ("_bytes", "bytes"),
    ("_s", "seconds"),
    ("_seconds", "seconds"),
    ("_tokens", "tokens"),
    ("_usd", "USD"),
    ("per_minute", "requests"),
    ("per_hour", "requests"),
    ("per_day", "requests"),
]


def settings_fields() -> list[dict[str, Any]]:
    """Every setting of the table sections, in the model's order (the page's order)."""
    fields = []
    for section, info in Settings.model_fields.items():
        model = info.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue  # [[upstreams]], [[models]], [[presets]]: their own tab
        for key, field in model.model_fields.items():
            if SECRETS.get(section) == key and section == "node":
                continue  # changed with the current one, in its own form
            fields.append(
                {
                    "section": section,
                    "key": key,
                    "description": field.description or "",
                    "kind": _kind(field.annotation),
                    "choices": _choices(field.annotation),
                    "unit": next((u for end, u in UNITS if key.endswith(end)), ""),
                    "applies": _applies(section, key),
                }
            )
    return fields


def model_fields() -> list[dict[str, Any]]:
    """Every field of a [[models]] entry, in the model's order; `optional`: may be left empty."""
    return [
        {
            "key": key,
            "description": field.description or "",
            "kind": _kind(field.annotation),
            "choices": _choices(field.annotation),
            "unit": next((u for end, u in UNITS if key.endswith(end)), ""),
            "optional": _bare(field.annotation) is not field.annotation,
            "required": field.is_required(),
        }
        for key, field in ModelSection.model_fields.items()
    ]


def _applies(section: str, key: str) -> str:
    if section not in TABLE_SECTIONS or key in STARTUP_ONLY.get(section, set()):
        return "file"  # read before the database is open: change it in the file
    return "next_start" if section in NEXT_START else "live"


def _bare(annotation: Any) -> Any:
    """`X | None` → X."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _choices(annotation: Any) -> list[Any]:
    bare = _bare(annotation)
    return list(get_args(bare)) if get_origin(bare) is Literal else []


def _kind(annotation: Any) -> str:
    bare = _bare(annotation)
    if get_origin(bare) is Literal:
        return "choice"
    if get_origin(bare) is list:
        return "list"
    names = {bool: "boolean", int: "integer", float: "number", str: "text"}
    return names.get(bare, "text")
