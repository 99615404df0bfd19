"""What a wallet app does against the node, over plain HTTP: pay a chat call, withdraw, read the
change. Shared by the interop tests; every call goes over a socket to a running node."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from tests.conftest import NodeHandle

HELLO: dict[str, Any] = {
    "model": "test-model",
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 10,
}
# Far above any answer the node gives (its mint calls time out after 10 s): a hang fails fast.
CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=45)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: Any  # parsed JSON, else the text


@dataclass(frozen=True)
class Paid:
    """A chat call that went through: its cost and the change token it brought, if any."""

    cost_msat: int
    change: str | None


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def http(node: NodeHandle, method: str, path: str, **kwargs: Any) -> Answer:
    async with (
        aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as session,
        session.request(method, node.url + path, **kwargs) as resp,
    ):
        text = await resp.text()
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = text
        return Answer(resp.status, dict(resp.headers), body)


def ok(answer: Answer) -> Any:
    assert answer.status == 200, (answer.status, str(answer.body)[:300])
    return answer.body


async def chat(node: NodeHandle, headers: dict[str, str], **body: Any) -> Paid:
    """A plain chat call (HELLO, with `body` over it); X-Cashu change comes in its header."""
    request = {**HELLO, **body}
    answer = await http(node, "POST", "/v1/chat/completions", json=request, headers=headers)
    body = ok(answer)
    cost = int(answer.headers["X-Cost-Msat"])
    assert body["usage"]["cost_msat"] == cost
    return Paid(cost, answer.headers.get("X-Cashu"))


async def stream_chunks(
    node: NodeHandle, headers: dict[str, str], **body: Any
) -> list[dict[str, Any]]:
    """The JSON chunks of a streamed chat call (usage asked for, as a client wanting its cost)."""
    body = {**HELLO, **body, "stream": True, "stream_options": {"include_usage": True}}
    chunks: list[dict[str, Any]] = []
    async with (
        aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as session,
        session.post(node.url + "/v1/chat/completions", json=body, headers=headers) as resp,
    ):
        assert resp.status == 200, (resp.status, (await resp.text())[:300])
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        async for raw in resp.content:
            line = raw.decode().strip()
            if line.startswith("data:") and line != "data: [DONE]":
                chunks.append(json.loads(line.removeprefix("data:")))
    return chunks


async def stream_chat(node: NodeHandle, headers: dict[str, str], **body: Any) -> Paid:
    """A streamed chat call; X-Cashu change comes in-band (an `x_cashu` field of a chunk)."""
    chunks = await stream_chunks(node, headers, **body)
    costs = [c["usage"]["cost_msat"] for c in chunks if c.get("usage")]
    changes = [c["x_cashu"] for c in chunks if "x_cashu" in c]
    assert len(costs) == 1 and len(changes) <= 1, chunks[-2:]
    return Paid(int(costs[0]), changes[0] if changes else None)


async def create_key(node: NodeHandle, token: str) -> tuple[str, int]:
    """/v1/wallet/create: the sk- key and the msat it holds."""
    body = ok(await http(node, "POST", "/v1/wallet/create", json={"cashu_token": token}))
    return str(body["api_key"]), int(body["balance_msat"])


async def balance_msat(node: NodeHandle, secret: str) -> int:
    body = ok(await http(node, "GET", "/v1/wallet/balance", headers=bearer(secret)))
    return int(body["balance_msat"])


async def withdraw(node: NodeHandle, secret: str, **body: Any) -> tuple[str, int]:
    """/v1/wallet/withdraw (everything, unless told): the token and its face value in sat."""
    paid = ok(await http(node, "POST", "/v1/wallet/withdraw", headers=bearer(secret), json=body))
    return str(paid["cashu_token"]), int(paid["amount"])


async def refund(node: NodeHandle, secret: str) -> str:
    """Routstr's /v1/balance/refund: everything back as a token."""
    return str(ok(await http(node, "POST", "/v1/balance/refund", headers=bearer(secret)))["token"])


def change_due(paid_sat: int, cost_msat: int) -> int:
    """The change in whole sat; the sub-sat rest stays with the node's account."""
    return (paid_sat * 1000 - cost_msat) // 1000
