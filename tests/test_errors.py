"""Bad input gets a clear 4xx in OpenAI's error envelope and changes no balance."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from tests.conftest import NodeHandle

CHAT = "/v1/chat/completions"
GOOD = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}]}


async def call(
    node: NodeHandle,
    path: str,
    *,
    key: str | None,
    method: str = "POST",
    data: Any = None,
    json: Any = None,
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, node.url + path, headers=headers, data=data, json=json) as resp,
    ):
        return resp.status, await resp.json()


def assert_envelope(body: dict[str, Any], code: str | None = None) -> None:
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    if code:
        assert error["code"] == code


CASES = [
    ("malformed JSON", {"data": b"{not json"}, 400, "invalid_request"),
    ("empty body", {"data": b""}, 400, "invalid_request"),
    ("JSON array", {"json": [1, 2]}, 400, "invalid_request"),
    ("missing model", {"json": {"messages": GOOD["messages"]}}, 404, "model_not_found"),
    ("unknown model", {"json": {**GOOD, "model": "nope"}}, 404, "model_not_found"),
    ("missing messages", {"json": {"model": "test-model"}}, 400, "invalid_request"),
    ("message without role", {"json": {**GOOD, "messages": [{"content": "x"}]}}, 400, None),
    ("negative max_tokens", {"json": {**GOOD, "max_tokens": -1}}, 400, None),
    ("string max_tokens", {"json": {**GOOD, "max_tokens": "9"}}, 400, None),
    ("zero n", {"json": {**GOOD, "n": 0}}, 400, None),
]


@pytest.mark.parametrize(("name", "request_kw", "status", "code"), CASES, ids=[c[0] for c in CASES])
async def test_bad_request_is_refused_and_charges_nothing(
    node: NodeHandle, name: str, request_kw: dict[str, Any], status: int, code: str | None
) -> None:
    key = node.new_key(50_000)
    got, body = await call(node, CHAT, key=key, **request_kw)
    assert got == status, body
    assert_envelope(body, code)
    assert node.balance(key) == 50_000
    node.assert_clean()


async def test_missing_payment_is_402_and_unknown_key_401(node: NodeHandle) -> None:
    status, body = await call(node, CHAT, key=None, json=GOOD)
    assert status == 402
    assert_envelope(body, "payment_required")
    status, body = await call(node, CHAT, key="sk-not-a-key", json=GOOD)
    assert status == 401
    assert_envelope(body, "invalid_api_key")


async def test_insufficient_balance_is_402(node: NodeHandle) -> None:
    key = node.new_key(1)
    status, body = await call(node, CHAT, key=key, json=GOOD)
    assert status == 402
    assert_envelope(body, "insufficient_balance")
    assert node.balance(key) == 1


async def test_body_over_the_limit_is_413(make_node: Callable[..., NodeHandle]) -> None:
    node = make_node(limits={"max_body_bytes": 1024})
    key = node.new_key(50_000)
    big = {**GOOD, "messages": [{"role": "user", "content": "x" * 5000}]}
    status, body = await call(node, CHAT, key=key, json=big)
    assert status == 413
    assert_envelope(body, "request_too_large")
    assert node.balance(key) == 50_000


@pytest.mark.parametrize(
    ("model", "status", "code"),
    [
        ("test-fail500", 502, "upstream_error"),
        ("test-fail429", 429, "upstream_rate_limited"),
    ],
)
async def test_upstream_refusal_is_an_envelope_and_free(
    node: NodeHandle, model: str, status: int, code: str
) -> None:
    key = node.new_key(50_000)
    got, body = await call(node, CHAT, key=key, json={**GOOD, "model": model})
    assert got == status
    assert_envelope(body, code)
    assert node.balance(key) == 50_000
    node.assert_clean()


async def test_unknown_route_and_method(node: NodeHandle) -> None:
    status, body = await call(node, "/v1/nope", key=None)
    assert status == 404
    assert_envelope(body)
    status, body = await call(node, "/v1/models", key=None, method="DELETE")
    assert status == 405
    assert_envelope(body)


async def test_unreachable_upstream_is_502(make_node: Callable[..., NodeHandle]) -> None:
    gone = "http://127.0.0.1:9/v1"  # nothing listens on the discard port
    node = make_node(upstreams=[{"name": n, "base_url": gone} for n in ("mock", "impatient")])
    key = node.new_key(50_000)
    status, body = await call(node, CHAT, key=key, json=GOOD)
    assert status == 502
    assert_envelope(body, "upstream_error")
    assert node.balance(key) == 50_000
