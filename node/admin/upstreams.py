"""Upstreams and model price overrides, edited one entry at a time; a connection test.

Each edit becomes a settings change of the whole list (`update_settings`), so it is validated,
applied live and persisted like any other setting. Keys left out of an edit are kept.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from node.admin.config import UPSTREAM_SECRET, key_follows_url, redacted, update_settings
from node.errors import Conflict, NotFound
from node.parts import Parts

TEST_TIMEOUT_S = 10.0
MAX_MODELS_SHOWN = 1000


def listing(parts: Parts) -> dict[str, Any]:
    data = redacted(parts.settings)
    for upstream in data["upstreams"]:
        upstream["models"] = [
            m.id for m in parts.catalogue.all() if m.upstream.name == upstream["name"]
        ]
        upstream["health"] = str(parts.monitor.status.get(upstream["name"], "unknown"))
    return {"upstreams": data["upstreams"], "models": data["models"]}


def _entries(parts: Parts, section: str) -> list[dict[str, Any]]:
    return [dict(entry) for entry in parts.settings.model_dump()[section]]


def _find(entries: list[dict[str, Any]], key: str, value: str, what: str) -> int:
    for i, entry in enumerate(entries):
        if entry[key] == value:
            return i
    raise NotFound(f"no {what} {value!r}", code=f"{what}_not_found")


async def add(parts: Parts, section: str, body: dict[str, Any]) -> dict[str, Any]:
    key, what = _key(section)
    entries = _entries(parts, section)
    if any(entry[key] == body.get(key) for entry in entries):
        raise Conflict(f"a {what} named {body.get(key)!r} exists already", param=key)
    entries.append(body)
    await _save(parts, section, entries)
    return listing(parts)


async def edit(parts: Parts, section: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    key, what = _key(section)
    entries = _entries(parts, section)
    i = _find(entries, key, name, what)
    if section == "upstreams":
        key_follows_url(body, entries[i], UPSTREAM_SECRET)
    entries[i] = {**entries[i], **{k: v for k, v in body.items() if not k.endswith("_set")}}
    renamed = section == "upstreams" and entries[i]["name"] != name
    patch: dict[str, Any] = {section: entries}
    if renamed:  # models naming the old upstream follow it
        models = _entries(parts, "models")
        for model in models:
            if model["upstream"] == name:
                model["upstream"] = entries[i]["name"]
        patch["models"] = models
    await update_settings(parts, patch)
    return listing(parts)


async def remove(parts: Parts, section: str, name: str) -> dict[str, Any]:
    key, what = _key(section)
    entries = _entries(parts, section)
    i = _find(entries, key, name, what)
    if section == "upstreams":
        users = [m.id for m in parts.settings.models if m.upstream == name]
        if users:
            raise Conflict(
                f"models {', '.join(users)} use the upstream {name!r}: remove them first",
                param="name",
            )
    del entries[i]
    await _save(parts, section, entries)
    return listing(parts)


def _key(section: str) -> tuple[str, str]:
    return ("name", "upstream") if section == "upstreams" else ("id", "model")


async def _save(parts: Parts, section: str, entries: list[dict[str, Any]]) -> None:
    await update_settings(parts, {section: entries})


async def test_connection(parts: Parts, name: str) -> dict[str, Any]:
    """GET {base_url}/models with the upstream's key: reachable, and which models it lists."""
    upstream = next((u for u in parts.settings.upstreams if u.name == name), None)
    if upstream is None:
        raise NotFound(f"no upstream {name!r}", code="upstream_not_found")
    headers = {"Authorization": f"Bearer {upstream.api_key}"} if upstream.api_key else {}
    started = time.monotonic()
    try:
        async with asyncio.timeout(TEST_TIMEOUT_S):
            async with parts.http.get(f"{upstream.base_url}/models", headers=headers) as resp:
                status = resp.status
                body = await resp.json(content_type=None) if status == 200 else None
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300], "models": []}
    latency_ms = round((time.monotonic() - started) * 1000)
    if status != 200:
        return {"ok": False, "status": status, "error": f"HTTP {status}", "models": []}
    ids = _model_ids(body)
    if ids is None:
        return {"ok": False, "status": status, "error": "no model list in the answer", "models": []}
    return {"ok": True, "status": status, "latency_ms": latency_ms, "models": ids}


def _model_ids(body: Any) -> list[str] | None:
    data = body.get("data") if isinstance(body, dict) else body
    if not isinstance(data, list):
        return None
    ids = [str(m["id"]) for m in data if isinstance(m, dict) and "id" in m]
    return ids[:MAX_MODELS_SHOWN]
