"""Objects an upstream stores are named only by the account they were made for, through here.

Every client's requests reach the upstream under the operator's one key, so a stored response,
its items, a conversation, a file, a vector store or a container made for one client (or by the
operator) could be read by any client that learned its id. Now a request may name a response,
or an item of one, only when the account paying for it was answered with it through this node;
the kinds of object no endpoint here makes are refused outright. Refused means a 400 naming the
field, before any token is redeemed, nothing charged, nothing sent upstream.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from tests.conftest import NodeHandle
from tests.support.pg import BOTH_BACKENDS
from tests.support.servers import ThreadedServer

pytestmark = BOTH_BACKENDS

BALANCE = 1_000_000
ASK = {"model": "test-model", "input": "hello", "max_output_tokens": 20}


@pytest.fixture
def paid_node(make_node: Callable[..., NodeHandle], mint: Any) -> NodeHandle:
    return make_node(cashu={"mints": [mint.url]})


async def post(
    node: NodeHandle, path: str, body: dict[str, Any], **headers: str
) -> tuple[int, Any]:
    """Status and body of a request; a stream's body is the list of its JSON events."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{node.url}/v1/{path}", json=body, headers=headers) as resp,
    ):
        if resp.content_type != "text/event-stream":
            return resp.status, await resp.json()
        text = (await resp.read()).decode()
    events = [line[6:] for line in text.splitlines() if line.startswith("data: {")]
    return resp.status, [json.loads(e) for e in events]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def sent_upstream(upstream: ThreadedServer) -> int:
    return len(upstream.mock.received)


async def respond(node: NodeHandle, key: str, **extra: Any) -> dict[str, Any]:
    """A plain Responses answer for `key`."""
    answer: dict[str, Any]
    status, answer = await post(node, "responses", {**ASK, **extra}, **bearer(key))
    assert status == 200, answer
    return answer


async def assert_refused(
    node: NodeHandle,
    upstream: ThreadedServer,
    key: str,
    body: dict[str, Any],
    param: str,
    code: str,
    path: str = "responses",
) -> None:
    before, sent = node.balance(key), sent_upstream(upstream)
    status, answer = await post(node, path, body, **bearer(key))
    assert status == 400, answer
    assert (answer["error"]["param"], answer["error"]["code"]) == (param, code)
    assert node.balance(key) == before
    assert sent_upstream(upstream) == sent
    node.assert_clean()


# --- responses: their ids and their items -----------------------------------------------------


async def test_a_response_is_continued_by_its_own_account_only(
    node: NodeHandle, upstream: ThreadedServer
) -> None:
    alice, mallory = node.new_key(BALANCE), node.new_key(BALANCE)
    first = await respond(node, alice)
    follow = {**ASK, "previous_response_id": first["id"]}
    await assert_refused(
        node, upstream, mallory, follow, "previous_response_id", "previous_response_not_found"
    )
    status, answer = await post(node, "responses", follow, **bearer(alice))
    assert status == 200, answer
    assert upstream.mock.received[-1]["body"]["previous_response_id"] == first["id"]


async def test_a_streamed_response_is_recorded_for_its_account(
    node: NodeHandle, upstream: ThreadedServer
) -> None:
    alice, mallory = node.new_key(BALANCE), node.new_key(BALANCE)
    status, events = await post(node, "responses", {**ASK, "stream": True}, **bearer(alice))
    assert status == 200
    created = next(e for e in events if e.get("type") == "response.created")
    follow = {**ASK, "previous_response_id": created["response"]["id"]}
    await assert_refused(
        node, upstream, mallory, follow, "previous_response_id", "previous_response_not_found"
    )
    assert (await post(node, "responses", follow, **bearer(alice)))[0] == 200


async def test_a_response_made_with_store_false_cannot_be_continued(
    node: NodeHandle, upstream: ThreadedServer
) -> None:
    alice = node.new_key(BALANCE)
    first = await respond(node, alice, store=False)
    follow = {**ASK, "previous_response_id": first["id"]}
    await assert_refused(
        node, upstream, alice, follow, "previous_response_id", "previous_response_not_found"
    )


async def test_output_items_go_back_only_from_their_own_account(
    node: NodeHandle, upstream: ThreadedServer
) -> None:
    alice, mallory = node.new_key(BALANCE), node.new_key(BALANCE)
    first = await respond(node, alice, store=False)  # items are sent back whole then
    item = first["output"][0]
    history = {**ASK, "input": [item, {"role": "user", "content": "and then?"}]}
    reference = {**ASK, "input": [{"type": "item_reference", "id": item["id"]}]}
    for body in (history, reference):
        await assert_refused(node, upstream, mallory, body, "input[0].id", "item_not_found")
        status, answer = await post(node, "responses", body, **bearer(alice))
        assert status == 200, answer


async def test_x_cashu_and_a_new_token_own_nothing_and_are_not_redeemed(
    paid_node: NodeHandle, upstream: ThreadedServer, mint: Any, ref_wallet: Any
) -> None:
    alice = paid_node.new_key(BALANCE)
    first = await respond(paid_node, alice)
    follow = {**ASK, "previous_response_id": first["id"]}
    for header in ("X-Cashu", "Authorization"):
        token = await ref_wallet.token(mint.url, 50)
        value = token if header == "X-Cashu" else f"Bearer {token}"
        sent = sent_upstream(upstream)
        status, answer = await post(paid_node, "responses", follow, **{header: value})
        assert status == 400 and answer["error"]["param"] == "previous_response_id"
        assert sent_upstream(upstream) == sent
        assert await ref_wallet.receive(token) == 50  # never redeemed: still the client's
    paid_node.assert_clean()


# --- objects no endpoint of this node makes ----------------------------------------------------

FILE_PART = {"type": "input_file", "file_id": "file-operators"}
UNSUPPORTED = [
    pytest.param({"conversation": "conv_123"}, "conversation", id="conversation"),
    pytest.param({"conversation": {"id": "conv_123"}}, "conversation", id="conversation object"),
    pytest.param({"prompt": {"id": "pmpt_123"}}, "prompt", id="stored prompt"),
    pytest.param(
        {"input": [{"role": "user", "content": [FILE_PART]}]},
        "input[0].content[0].file_id",
        id="input_file",
    ),
    pytest.param(
        {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-x"}]}]},
        "input[0].content[0].file_id",
        id="input_image",
    ),
    pytest.param(
        {"tools": [{"type": "file_search", "vector_store_ids": ["vs_123"]}]},
        "tools[0].vector_store_ids",
        id="file_search",
    ),
    pytest.param(
        {"tools": [{"type": "code_interpreter", "container": "cntr_123"}]},
        "tools[0].container",
        id="container",
    ),
    pytest.param(
        {"tools": [{"type": "code_interpreter", "container": {"type": "auto", "file_ids": ["f"]}}]},
        "tools[0].container.file_ids",
        id="container files",
    ),
]


@pytest.mark.parametrize(("extra", "param"), UNSUPPORTED)
async def test_responses_naming_objects_this_node_never_makes_are_refused(
    node: NodeHandle, upstream: ThreadedServer, extra: dict[str, Any], param: str
) -> None:
    key = node.new_key(BALANCE)
    await assert_refused(node, upstream, key, {**ASK, **extra}, param, "stored_object_unsupported")


CHAT = {"model": "test-model", "max_tokens": 20}
CHAT_UNSUPPORTED = [
    pytest.param(
        [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-x"}}]}],
        "messages[0].content[0].file.file_id",
        id="file part",
    ),
    pytest.param(
        [
            {"role": "user", "content": "say hi"},
            {"role": "assistant", "audio": {"id": "audio_123"}},
            {"role": "user", "content": "again"},
        ],
        "messages[1].audio",
        id="audio answer",
    ),
]


@pytest.mark.parametrize(("messages", "param"), CHAT_UNSUPPORTED)
async def test_chat_naming_stored_objects_is_refused(
    node: NodeHandle, upstream: ThreadedServer, messages: list[Any], param: str
) -> None:
    key = node.new_key(BALANCE)
    body = {**CHAT, "messages": messages}
    await assert_refused(
        node, upstream, key, body, param, "stored_object_unsupported", path="chat/completions"
    )


async def test_a_function_whose_schema_has_a_file_id_is_no_file(node: NodeHandle) -> None:
    key = node.new_key(BALANCE)
    schema = {"type": "object", "properties": {"file_id": {"type": "string"}}}
    tool = {"type": "function", "function": {"name": "open", "parameters": schema}}
    body = {**CHAT, "messages": [{"role": "user", "content": "hi"}], "tools": [tool]}
    status, answer = await post(node, "chat/completions", body, **bearer(key))
    assert status == 200, answer
