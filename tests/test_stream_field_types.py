"""`stream` and `stream_options` are read by the node itself (relay or not, usage asked or
not): a wrong type is a 400 in OpenAI's envelope before any upstream call, and costs nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import NodeHandle
from tests.support.money import call
from tests.support.servers import ThreadedServer

HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/chat/completions", {"messages": HI, "stream": "yes"}, "stream"),
        ("/v1/chat/completions", {"messages": HI, "stream": 1}, "stream"),
        ("/v1/chat/completions", {"messages": HI, "stream": True, "stream_options": "x"},
         "stream_options"),
        ("/v1/completions", {"prompt": "hi", "stream": "true"}, "stream"),
        ("/v1/responses", {"input": "hi", "stream": [True]}, "stream"),
    ],
)  # fmt: skip
async def test_a_wrong_stream_type_is_a_400(
    node: NodeHandle, upstream: ThreadedServer, path: str, body: dict[str, Any], field: str
) -> None:
    key = node.new_key(100_000)
    calls = len(upstream.mock.received)
    status, _, answer = await call(node, "POST", path, key, json={"model": "test-model", **body})
    assert status == 400, answer
    assert answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["param"] == field, answer
    assert len(upstream.mock.received) == calls
    assert node.balance(key) == 100_000


async def test_null_stream_fields_are_no_stream(node: NodeHandle) -> None:
    key = node.new_key(100_000)
    body = {"model": "test-model", "messages": HI, "stream": None, "stream_options": None}
    status, _, answer = await call(node, "POST", "/v1/chat/completions", key, json=body)
    assert status == 200 and answer["object"] == "chat.completion", answer
