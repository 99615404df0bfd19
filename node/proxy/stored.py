"""Objects an upstream stores, which a request can name by id: only the payer's own.

Upstreams keep what some requests make — a Responses answer (`previous_response_id`) and its
output items (`item_reference`, or an input item carrying its `id`), conversations, files,
vector stores, containers, stored prompts — and a later request may name them by id. They all
live in the operator's upstream account, under the operator's key: a client that learned an id
would read another client's conversation, or the operator's files. So a request may name only
what the account paying for it was answered with through this node:

- a response id, recorded from each /v1/responses answer (plain or streamed) unless the
  request said `store: false`, and the ids of its output items (recorded either way: a client
  sends them back with their encrypted reasoning when nothing is stored);
- nothing else: no endpoint of this node makes conversations, files, vector stores, containers,
  stored prompts or stored audio, so a request naming one is refused, with a 400 naming the
  field.

A request is checked before it is paid for, so no token is redeemed for a refused one; a
credential that opens no account yet (a new token), and an X-Cashu payment (an account of its
own per token), own nothing.

    MIGRATIONS          series "stored" of the node's database
    StoredObjects       the table: who was answered with which ids
    refuse_foreign      the check, before payment (called by the OpenAI routes)
    Recorder            the ids an answer carries, written before the client sees them
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson

from node.db.group_commit import GroupCommit
from node.db.store import Store
from node.errors import BadRequest
from node.money.payments import Payer

MIGRATIONS = [
    """
    CREATE TABLE stored_objects (
        account_id INTEGER NOT NULL,
        object_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (account_id, object_id)
    );
    """,
]

RESPONSE, ITEM = "response", "item"
MAX_ID_CHARS = 200  # ids an upstream makes are short; a longer one is no id of ours
# Fields naming upstream files and vector stores, wherever they sit in messages, input items
# (content parts, tool outputs) or tools (file_search, code_interpreter, image_generation)…
FILE_FIELDS = {"file_id": "file", "file_ids": "file", "vector_store_ids": "vector store"}
# …but not inside what a client defines freely: a function's JSON schema may well have a
# property called file_id.
SCHEMA_FIELDS = ("function", "parameters", "format", "input_schema", "schema")


class StoredObjects:
    """The stored_objects table: the ids of upstream objects each account was answered with."""

    def __init__(self, db: Store, commits: GroupCommit):
        self.db, self.commits = db, commits

    def owns(self, account_id: int, object_id: str, kind: str) -> bool:
        if len(object_id) > MAX_ID_CHARS or "\x00" in object_id:
            return False  # none was kept: PostgreSQL's text refuses a NUL (see `record`)
        row = self.db.query_one(
            "SELECT 1 FROM stored_objects WHERE account_id = ? AND object_id = ? AND kind = ?",
            (account_id, object_id, kind),
        )
        return row is not None

    async def record(self, account_id: int, objects: list[tuple[str, str]]) -> None:
        """(id, kind) pairs the account was answered with, committed with the next batch."""
        now = int(time.time())
        rows = [(account_id, i, kind, now) for i, kind in objects if "\x00" not in i]

        def write(conn: Any) -> None:
            conn.executemany(
                "INSERT INTO stored_objects (account_id, object_id, kind, created_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (account_id, object_id) DO NOTHING",
                rows,
            )

        await self.commits.run(write)


def refuse_foreign(
    stored: StoredObjects, owner: int | None, body: dict[str, Any], path: str
) -> None:
    """A 400 naming the first field of `body` that names a stored object the paying account
    (`owner`: the account that will pay, if one exists already) did not create through this
    node; nothing when there is none."""
    found = list(_references(body, path))
    if not found:
        return
    for field, object_id, kind in found:
        if kind not in (RESPONSE, ITEM):
            raise BadRequest(
                f"{field} names a {kind} stored upstream; this node keeps no {kind}s for its "
                "clients: send the content itself",
                param=field,
                code="stored_object_unsupported",
            )
        if owner is None or not stored.owns(owner, object_id, kind):
            raise BadRequest(
                f"{field}: no {kind} {object_id[:MAX_ID_CHARS]!r} was made for this account "
                "through this node (an X-Cashu payment or a new token owns none)",
                param=field,
                code="previous_response_not_found" if kind == RESPONSE else "item_not_found",
            )


def _references(body: dict[str, Any], path: str) -> Iterator[tuple[str, str, str]]:
    """(field, id, kind) of every stored object the request names."""
    if path == "responses":
        previous = body.get("previous_response_id")
        if previous is not None:
            yield "previous_response_id", str(previous), RESPONSE
        if body.get("conversation") is not None:
            yield "conversation", "", "conversation"
        if isinstance(body.get("prompt"), dict):
            yield "prompt", "", "prompt"
        yield from _input_items(body.get("input"))
    for name in ("input", "messages", "tools"):
        yield from _files(body.get(name), name)
    yield from _containers_and_audio(body)


def _input_items(items: Any) -> Iterator[tuple[str, str, str]]:
    """Input items named by id: an `item_reference`, or an item sent back with its `id`."""
    for i, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, dict) and item.get("id") is not None:
            yield f"input[{i}].id", str(item["id"]), ITEM


def _files(value: Any, where: str) -> Iterator[tuple[str, str, str]]:
    """File and vector-store ids anywhere under `value` (content parts, tools). A stack, not
    recursion: a client may nest a body as deep as the JSON parser allows. Paths are made only
    for a body that names one: a body of many tiny parts costs one cheap walk."""
    if not isinstance(value, dict | list) or not _names_files(value):  # most: absent
        return
    stack = [(value, where)]
    while stack:
        value, where = stack.pop()
        inner: list[tuple[Any, str]] = []  # pushed in reverse: the first comes out first
        if isinstance(value, dict):
            for key, item in value.items():
                if key in FILE_FIELDS and item:
                    yield f"{where}.{key}", "", FILE_FIELDS[key]
                elif key not in SCHEMA_FIELDS and isinstance(item, dict | list):
                    inner.append((item, f"{where}.{key}"))
        elif isinstance(value, list):
            inner = [
                (v, f"{where}[{i}]") for i, v in enumerate(value) if isinstance(v, dict | list)
            ]
        stack.extend(reversed(inner))


FILE_KEYS = frozenset(FILE_FIELDS)
SCHEMA_KEYS = frozenset(SCHEMA_FIELDS)
FILE_MARKERS = tuple(f'"{key}":'.encode() for key in FILE_FIELDS)  # as orjson writes a key


def _names_files(value: Any) -> bool:
    """Whether a file field with a value sits anywhere under `value`, schemas aside. orjson
    writes every key as it is (no escapes), at C speed: a value that never names a file field
    needs no walk in Python."""
    try:
        text = orjson.dumps(value)
    except orjson.JSONEncodeError:
        text = b""
    if text and not any(marker in text for marker in FILE_MARKERS):
        return False
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            if FILE_KEYS.isdisjoint(item) and SCHEMA_KEYS.isdisjoint(item):
                stack.extend(item.values())
                continue
            for key, inner in item.items():
                if key in FILE_KEYS and inner:
                    return True
                if key not in SCHEMA_KEYS:
                    stack.append(inner)
    return False


def _containers_and_audio(body: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    tools = body.get("tools")
    for i, tool in enumerate(tools if isinstance(tools, list) else []):
        if isinstance(tool, dict) and isinstance(tool.get("container"), str):
            yield f"tools[{i}].container", "", "container"
    messages = body.get("messages")
    for i, message in enumerate(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and isinstance(message.get("audio"), dict):
            yield f"messages[{i}].audio", "", "audio answer"


class Recorder:
    """Remembers, for the paying account, the ids a Responses answer carries."""

    def __init__(self, stored: StoredObjects, account_id: int, keeps_response: bool):
        self.stored, self.account_id, self.keeps_response = stored, account_id, keeps_response
        self._seen: set[str] = set()
        self._last: object = None  # a stream's snapshot stays the same over many chunks

    @classmethod
    def of(
        cls, stored: StoredObjects, payer: Payer, path: str, body: dict[str, Any]
    ) -> Recorder | None:
        """A recorder for a Responses request by an account that can name them later."""
        if path != "responses" or payer.untouched_msat is not None:  # X-Cashu: one use only
            return None
        return cls(stored, payer.owner_id, body.get("store") is not False)

    async def note(self, response: Any) -> None:
        """Record the ids of `response` (an answer, or a snapshot of it in a stream)."""
        if not isinstance(response, dict) or response is self._last:
            return
        self._last = response
        new = [(i, k) for i, k in self._ids(response) if i not in self._seen]
        if not new:
            return
        self._seen.update(i for i, _ in new)
        await self.stored.record(self.account_id, new)

    def _ids(self, response: dict[str, Any]) -> Iterator[tuple[str, str]]:
        if self.keeps_response and _is_id(response.get("id")):
            yield response["id"], RESPONSE
        output = response.get("output")
        for item in output if isinstance(output, list) else []:
            if isinstance(item, dict) and _is_id(item.get("id")):
                yield item["id"], ITEM


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS
