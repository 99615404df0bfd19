"""A record per paid request, written with its settlement: what each request cost, seen by the
key's holder over HTTP (/v1/usage, /v1/requests), equal to the answers' costs and to the
ledger's charges; never the prompt or the answer; kept `[accounts] history_days`."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from node.app import create_app
from node.money.records import DAY_S
from tests.conftest import NodeHandle
from tests.support.mints import MintInfo, RefWallet
from tests.support.money import call
from tests.support.pg import BOTH_BACKENDS
from tests.support.sdk import async_openai
from tests.support.servers import ThreadedServer

pytestmark = BOTH_BACKENDS

SECRET_WORDS = "purple-elephant-" + secrets.token_hex(8)


def ask(model: str = "test-model", **extra: Any) -> dict[str, Any]:
    content = f"tell me about {SECRET_WORDS}"
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def charges(node: NodeHandle) -> int:
    row = node.db.query_one("SELECT COALESCE(SUM(-amount_msat), 0) FROM entries WHERE kind = ?",
                            ("charge",))  # fmt: skip
    assert row is not None
    return int(row[0])


async def wait_settled(node: NodeHandle) -> None:
    deadline = time.monotonic() + 15
    while node.ledger.open_reservations() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


async def dropped_stream(node: NodeHandle, key: str) -> None:
    """A client that reads the first chunk of a stream and goes away."""
    body = ask("test-slow", stream=True, max_tokens=20, mock={"pause_s": 1.0})
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            node.url + "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
        ) as resp,
    ):
        assert resp.status == 200
        await resp.content.readany()


@pytest.fixture
def paid_node(make_node: Callable[..., NodeHandle], mint: MintInfo) -> NodeHandle:
    return make_node(cashu={"mints": [mint.url]})


async def test_usage_totals_equal_the_answers_costs_and_the_ledgers_charges(
    paid_node: NodeHandle, mint: MintInfo, ref_wallet: RefWallet
) -> None:
    key = paid_node.new_key(2_000_000)
    api = async_openai(f"{paid_node.url}/v1", key)
    seen = 0
    for _ in range(3):  # plain
        raw = await api.chat.completions.with_raw_response.create(**ask(max_tokens=10))
        seen += int(raw.headers["x-cost-msat"])
    stream = await api.chat.completions.create(**ask(max_tokens=10, stream=True))
    chunks = [c async for c in stream]
    seen += chunks[-1].usage.model_extra["cost_msat"]
    await dropped_stream(paid_node, key)  # the client never sees this one's cost
    # X-Cashu: its own one-shot account, its own records
    token = await ref_wallet.token(mint.url, 50)
    paying = async_openai(f"{paid_node.url}/v1", "unused", **{"X-Cashu": token})
    raw_x = await paying.chat.completions.with_raw_response.create(**ask(max_tokens=10))
    x_cost = int(raw_x.headers["x-cost-msat"])
    await wait_settled(paid_node)

    status, _, usage = await call(paid_node, "GET", "/v1/usage", key)
    assert status == 200, usage
    status, _, page = await call(paid_node, "GET", "/v1/requests?limit=200", key)
    assert status == 200, page
    records = page["data"]
    assert len(records) == 5 and usage["totals"]["requests"] == 5
    dropped = next(r for r in records if r["status"] == "incomplete")
    assert dropped["cost_msat"] > 0 and dropped["model"] == "test-slow"
    assert usage["totals"]["cost_msat"] == seen + dropped["cost_msat"]
    assert usage["totals"]["cost_msat"] == sum(r["cost_msat"] for r in records)
    assert charges(paid_node) == usage["totals"]["cost_msat"] + x_cost  # the ledger agrees
    assert {r["status"] for r in records} == {"ok", "incomplete"}
    assert all(r["route"] == "chat/completions" and r["upstream"] == "mock" for r in records)
    assert all(r["prompt_tokens"] > 0 and r["duration_ms"] >= 0 for r in records)
    status, _, x_usage = await call(paid_node, "GET", "/v1/usage", x_cashu=token)
    assert status == 200 and x_usage["totals"] == {**x_usage["totals"], "requests": 1}
    assert x_usage["totals"]["cost_msat"] == x_cost
    # one request's record, by its id (a client that lost the answer learns its cost)
    request_id = raw_x.headers["x-request-id"]
    status, _, one = await call(paid_node, "GET", f"/v1/requests/{request_id}", x_cashu=token)
    assert status == 200 and one["cost_msat"] == x_cost and one["request_id"] == request_id
    status, _, other = await call(paid_node, "GET", f"/v1/requests/{request_id}", key)
    assert status == 404 and other["error"]["code"] == "request_not_found"  # not this key's
    by_model = (await call(paid_node, "GET", "/v1/usage?group_by=model", key))[2]
    assert {row["model"]: row["requests"] for row in by_model["data"]} == {
        "test-model": 4,
        "test-slow": 1,
    }
    by_day = (await call(paid_node, "GET", "/v1/usage?group_by=day", key))[2]
    assert sum(row["cost_msat"] for row in by_day["data"]) == usage["totals"]["cost_msat"]
    later = (await call(paid_node, "GET", f"/v1/usage?from={int(time.time()) + 60}", key))[2]
    assert later["totals"]["requests"] == 0
    paid_node.assert_clean()


async def test_requests_are_cursor_paged_newest_first(node: NodeHandle) -> None:
    key = node.new_key(1_000_000)
    api = async_openai(f"{node.url}/v1", key)
    ids = []
    for _ in range(5):
        raw = await api.chat.completions.with_raw_response.create(**ask(max_tokens=5))
        ids.append(raw.headers["x-request-id"])
    seen: list[str] = []
    before = ""
    while True:
        status, _, page = await call(node, "GET", f"/v1/requests?limit=2{before}", key)
        assert status == 200, page
        seen += [r["request_id"] for r in page["data"]]
        if not page["has_more"]:
            break
        before = f"&before={page['next_before']}"
    assert seen == ids[::-1]
    for bad in ("limit=0", "limit=x", "limit=100000", "limit=%C2%B2"):
        status, _, body = await call(node, "GET", f"/v1/requests?{bad}", key)
        assert status == 400 and body["error"]["param"] == "limit"
    for bad in ("group_by=week", "from=yesterday", "to=%C2%B2", "from=" + "9" * 30):
        status, _, body = await call(node, "GET", f"/v1/usage?{bad}", key)
        assert status == 400, body
    assert (await call(node, "GET", "/v1/usage"))[0] == 401
    assert (await call(node, "GET", "/v1/requests", "sk-unknown"))[0] == 401


async def test_no_record_holds_the_prompt_or_the_answer(node: NodeHandle) -> None:
    key = node.new_key(1_000_000)
    api = async_openai(f"{node.url}/v1", key)
    answer = await api.chat.completions.create(**ask(max_tokens=10))
    said = answer.choices[0].message.content or ""
    stream = await api.chat.completions.create(**ask(max_tokens=10, stream=True))
    [c async for c in stream]
    status, _, page = await call(node, "GET", "/v1/requests", key)
    assert status == 200 and len(page["data"]) == 2
    rows = node.db.query("SELECT * FROM request_records")
    assert len(rows) == 2
    dumped = repr([tuple(r) for r in rows])
    assert SECRET_WORDS not in dumped and "tell me" not in dumped
    assert said.strip() and said.strip() not in dumped
    assert "127.0.0.1" not in dumped  # nor the client's address
    if node.settings.store.url:
        return
    node.db.close()  # the whole SQLite file, the WAL included: the prompt is nowhere
    for path in node.settings.node.data_dir.glob("nutgate.sqlite3*"):
        assert SECRET_WORDS.encode() not in path.read_bytes(), path


async def test_with_history_days_0_nothing_is_kept(make_node: Callable[..., NodeHandle]) -> None:
    node = make_node(accounts={"history_days": 0})
    key = node.new_key(1_000_000)
    api = async_openai(f"{node.url}/v1", key)
    raw = await api.chat.completions.with_raw_response.create(**ask(max_tokens=10))
    assert int(raw.headers["x-cost-msat"]) > 0
    assert node.db.query("SELECT * FROM request_records") == []
    status, _, usage = await call(node, "GET", "/v1/usage", key)
    assert status == 200 and usage["totals"]["requests"] == 0
    assert charges(node) == int(raw.headers["x-cost-msat"])  # charged all the same
    node.assert_clean()


async def test_records_older_than_the_retention_are_purged(
    make_node: Callable[..., NodeHandle],
) -> None:
    node = make_node(accounts={"history_days": 2})
    key = node.new_key(1_000_000)
    api = async_openai(f"{node.url}/v1", key)
    for _ in range(3):
        await api.chat.completions.create(**ask(max_tokens=5))
    old = node.db.query("SELECT request_id FROM request_records ORDER BY id LIMIT 2")
    with node.db.transaction() as conn:  # two of them made three days ago
        for row in old:
            conn.execute(
                "UPDATE request_records SET created_at = created_at - ? WHERE request_id = ?",
                (3 * DAY_S, row["request_id"]),
            )
    node.server.stop()  # the node purges at start, then every 30 s
    again = ThreadedServer(lambda: create_app(node.settings)).start()
    node.server = again
    node.url = again.url
    deadline = time.monotonic() + 10
    while len(node.db.query("SELECT 1 FROM request_records")) > 1:
        assert time.monotonic() < deadline, "not purged"
        await asyncio.sleep(0.1)
    status, _, page = await call(node, "GET", "/v1/requests", key)
    assert status == 200 and len(page["data"]) == 1
    assert page["data"][0]["request_id"] not in {r["request_id"] for r in old}
