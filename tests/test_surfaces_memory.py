"""Presets with memory: the last N turns per key, replayed; GET and DELETE /v1/memory/{preset}."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.conftest import NodeHandle
from tests.support.httpfetch import fetch
from tests.support.servers import ThreadedServer
from tests.test_spine import client

BALANCE = 1_000_000


@pytest.fixture
def memory_node(make_node: Callable[..., NodeHandle]) -> NodeHandle:
    return make_node(
        presets=[
            {"name": "friend", "model": "test-model", "system_prompt": "Be kind.",
             "memory_turns": 2},
            {"name": "forgetful", "model": "test-model", "system_prompt": "Be brief."},
        ]
    )  # fmt: skip


def say(node: NodeHandle, key: str, text: str, model: str = "preset/friend", **kw: Any) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": text}]
    client(node, key).chat.completions.create(model=model, messages=messages, max_tokens=3, **kw)


def sent(upstream: ThreadedServer) -> list[Any]:
    return [m["content"] for m in upstream.mock.received[-1]["body"]["messages"]]


def memory(node: NodeHandle, key: str, method: str = "GET") -> Any:
    headers = {"Authorization": f"Bearer {key}"}
    return fetch(f"{node.url}/v1/memory/friend", method, headers)


def test_a_memory_preset_recalls_for_the_same_key_only(
    memory_node: NodeHandle, upstream: ThreadedServer
) -> None:
    ada, bob = memory_node.new_key(BALANCE), memory_node.new_key(BALANCE)
    say(memory_node, ada, "My name is Ada.")
    say(memory_node, ada, "What is my name?")
    assert sent(upstream) == ["Be kind.", "My name is Ada.", "tok tok tok ", "What is my name?"]
    say(memory_node, bob, "What is my name?")
    assert sent(upstream) == ["Be kind.", "What is my name?"]  # another key: nothing recalled
    say(memory_node, ada, "And now?", stream=True)  # streamed answers are kept too
    say(memory_node, ada, "Still there?")
    assert sent(upstream) == [
        "Be kind.",
        "What is my name?",
        "tok tok tok ",
        "And now?",
        "tok tok tok ",
        "Still there?",
    ]  # fmt: skip  (the last 2 turns)
    kept = memory(memory_node, ada).json()["messages"]
    assert [m["content"] for m in kept] == ["And now?", "tok tok tok ", "Still there?",
                                            "tok tok tok "]  # fmt: skip
    assert memory(memory_node, bob).json()["messages"][0]["content"] == "What is my name?"
    memory_node.assert_clean()


def test_delete_forgets(memory_node: NodeHandle, upstream: ThreadedServer) -> None:
    key = memory_node.new_key(BALANCE)
    say(memory_node, key, "Remember the number 7.")
    reply = memory(memory_node, key, "DELETE")
    assert reply.status == 200 and reply.json()["deleted"] is True
    assert memory(memory_node, key).json()["messages"] == []
    say(memory_node, key, "Which number?")
    assert sent(upstream) == ["Be kind.", "Which number?"]


def test_memory_is_opt_in_and_needs_a_key(
    memory_node: NodeHandle, upstream: ThreadedServer
) -> None:
    key = memory_node.new_key(BALANCE)
    say(memory_node, key, "one", model="preset/forgetful")
    say(memory_node, key, "two", model="preset/forgetful")
    assert sent(upstream) == ["Be brief.", "two"]
    assert fetch(f"{memory_node.url}/v1/memory/friend").status == 401
    headers = {"Authorization": f"Bearer {key}"}
    assert fetch(f"{memory_node.url}/v1/memory/forgetful", headers=headers).status == 404
    say(memory_node, key, "zebra-secret")
    assert "zebra" in str(memory(memory_node, key).json())
    records = fetch(f"{memory_node.url}/v1/requests", headers=headers).json()
    assert len(records["data"]) == 3
    assert "zebra" not in str(records) and "tok tok" not in str(records)  # not in the records
