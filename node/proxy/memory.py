"""Presets with memory (Botstrapp's characters): a `[[presets]]` entry with `memory_turns = N`
keeps, per key, the last N turns (a user message and the answer to it) and puts them before
the client's messages in the next request to that preset.

Opt-in per preset; only a key that already has an account (an `sk-` key, or a token used as
one) has a memory: an X-Cashu payment is one request. The key's holder reads it with
`GET /v1/memory/{preset}` and forgets it with `DELETE`. The turns live in their own table,
never in the per-request records.

    MIGRATIONS       series "memory" of the node's database
    Memory           the table: recall, remember, forget
    RememberingMeter a chat meter that keeps the answer's text as it passes
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from node.db.store import Store
from node.proxy.meters import ChatMeter

MIGRATIONS = [
    """
    CREATE TABLE preset_memory (
        account_id INTEGER NOT NULL,
        preset TEXT NOT NULL,
        turns TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (account_id, preset)
    );
    """,
]

MAX_MEMORY_BYTES = 256 * 1024  # one preset's memory of one key, at most


class Memory:
    def __init__(self, db: Store):
        self.db = db

    def recall(self, account_id: int, preset: str) -> list[dict[str, Any]]:
        row = self.db.query_one(
            "SELECT turns FROM preset_memory WHERE account_id = ? AND preset = ?",
            (account_id, preset),
        )
        return list(orjson.loads(row[0])) if row is not None else []

    def remember(
        self, account_id: int, preset: str, messages: list[dict[str, Any]], turns: int
    ) -> None:
        kept = last_turns(messages, turns)
        while kept and len(orjson.dumps(kept)) > MAX_MEMORY_BYTES:
            kept = last_turns(kept, _turn_count(kept) - 1)
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO preset_memory (account_id, preset, turns, updated_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (account_id, preset)"
                " DO UPDATE SET turns = excluded.turns, updated_at = excluded.updated_at",
                (account_id, preset, orjson.dumps(kept).decode(), int(time.time())),
            )

    def forget(self, account_id: int, preset: str) -> bool:
        with self.db.transaction() as conn:
            cur = conn.execute(
                "DELETE FROM preset_memory WHERE account_id = ? AND preset = ?",
                (account_id, preset),
            )
            return bool(cur.rowcount)


def last_turns(messages: list[dict[str, Any]], turns: int) -> list[dict[str, Any]]:
    """The messages from the `turns`-th last user message on."""
    if turns <= 0:
        return []
    starts = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    return messages[starts[-turns] :] if len(starts) >= turns else list(messages)


def _turn_count(messages: list[dict[str, Any]]) -> int:
    return sum(1 for m in messages if m.get("role") == "user")


class RememberingMeter(ChatMeter):
    """chat/completions whose answer's text is kept (`text`), plain or streamed."""

    def __init__(self) -> None:
        super().__init__("chat/completions")
        self.parts: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def answer_out(self, answer: dict[str, Any]) -> None:
        self.parts = [_content(answer, "message")]

    def event_out(self, event: bytes) -> bytes:
        if event.startswith(b"data: {"):
            try:
                chunk = orjson.loads(event[6:])
            except orjson.JSONDecodeError:
                return event
            if isinstance(chunk, dict):
                self.parts.append(_content(chunk, "delta"))
        return event


def _content(answer: dict[str, Any], key: str) -> str:
    choices = answer.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    part = first.get(key) if isinstance(first, dict) else None
    content = part.get("content") if isinstance(part, dict) else None
    return content if isinstance(content, str) else ""
