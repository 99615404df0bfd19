"""Nodes in front of the billing upstream, and paying them the three ways a client can.

A pytest plugin (tests/conftest.py). Fixtures:

    billing_upstream    the BillingUpstream server (session), `.mock` is the BillingUpstream
    billing_node        a node selling BILLING_MODELS from it, paid with the `mint` fixture

    outcome = await pay(node, mock, path, body, token=...)      # X-Cashu
    outcome = await pay(node, mock, path, body, key=...)        # an sk- key
    outcome.charged_msat, outcome.billed_msat                   # the node's, the upstream's
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

import wallet as cashu
from node.money.ledger import hash_key
from tests.support.billing_upstream import Bill, BillingUpstream, bill_msat
from tests.support.servers import ThreadedServer, serve_mock

if TYPE_CHECKING:
    from tests.conftest import NodeHandle
    from tests.support.mints import MintInfo

PRICE = {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0, "max_output_tokens": 1000}
BILLING_MODELS: list[dict[str, Any]] = [
    {"id": "bill-model", **PRICE},
    {"id": "bill-vision-mini", **PRICE},  # bills images as gpt-4o-mini does, ~33x
    {"id": "bill-small-context", **PRICE, "context_length": 8000},
    {"id": "bill-image", "image_output_usd": 0.04},
    {"id": "bill-search", **PRICE, "upstream_model": "bill-search-preview", "request_usd": 0.03},
    {"id": "bill-transcribe", **PRICE},  # transcriptions priced by token
    {"id": "bill-whisper", "audio_usd_per_minute": 0.006},
]
CONTEXTS = {"bill-small-context": 8000, "gemini-2.5-pro": 1_048_576}
IMAGE_MULTIPLIERS = {"bill-vision-mini": 2833 / 85}
# genai-prices' gemini-2.5-pro, USD per Mtok: (input, output) up to 200k prompt tokens, and past
GEMINI_PRO = ((Fraction("1.25"), Fraction(10)), (Fraction("2.5"), Fraction(15)))
TIMEOUT = aiohttp.ClientTimeout(total=60)


@pytest.fixture(scope="session")
def billing_upstream() -> Iterator[ThreadedServer]:
    yield from serve_mock(BillingUpstream(CONTEXTS, IMAGE_MULTIPLIERS))


@pytest.fixture
def billing_node(
    make_node: Callable[..., NodeHandle], billing_upstream: ThreadedServer, mint: MintInfo
) -> Callable[..., NodeHandle]:
    def make(**sections: Any) -> NodeHandle:
        upstream = {
            "name": "billing",
            "base_url": f"{billing_upstream.url}/v1",
            "prefixes": ["gpt-*", "gemini-*"],
        }
        sections.setdefault("upstreams", [upstream])
        sections.setdefault("models", BILLING_MODELS)
        sections.setdefault("cashu", {"mints": [mint.url]})
        sections.setdefault("limits", {"per_minute": 0, "per_hour": 0, "per_day": 0})
        return make_node(**sections)

    return make


def price_of(bill: Bill) -> int:
    """What the upstream's bill costs at the price the node sells the model at."""
    if bill.model.startswith("gemini-2.5-pro"):
        prompt, output = GEMINI_PRO[bill.prompt_tokens > 200_000]
        return bill_msat(bill, prompt, output)
    return bill_msat(bill, 1, 2, image_usd=Fraction("0.04"), audio_minute_usd=Fraction("0.006"))


@dataclass
class Outcome:
    status: int
    body: bytes
    charged_msat: int  # what the node took from the payer, read from its ledger
    bills: list[Bill] = field(default_factory=list)  # what the upstream billed meanwhile

    @property
    def billed_msat(self) -> int:
        return sum(price_of(b) for b in self.bills)

    def error(self) -> dict[str, Any]:
        return dict(json.loads(self.body)["error"])


async def post(
    node: NodeHandle, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, Any, bytes]:
    """JSON, or a multipart form for a transcription (its `file`: WAV bytes)."""
    options: dict[str, Any] = {"json": body}
    if path == "audio/transcriptions":
        form = aiohttp.FormData({k: v for k, v in body.items() if k != "file"})
        form.add_field("file", body["file"], filename="clip.wav", content_type="audio/wav")
        options = {"data": form}
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as session,
        session.post(f"{node.url}/v1/{path}", headers=headers or {}, **options) as resp,
    ):
        return resp.status, resp.headers, await resp.read()


async def quote_sat(node: NodeHandle, path: str, body: dict[str, Any]) -> int:
    """The sats the node's 402 asks for (the most the request can cost), or 0 if no 402."""
    status, _, raw = await post(node, path, body)
    found = re.search(rb"at least (\d+) sat", raw)
    return int(found.group(1)) if status == 402 and found else 0


def _change_sat(headers: Any, raw: bytes) -> int:
    token = headers.get("X-Cashu")
    if token is None:  # a stream's change comes in its last event
        found = re.search(rb'"x_cashu":\s*"([^"]+)"', raw)
        token = found.group(1).decode() if found else None
    return cashu.parse_token(token).amount if token else 0


async def pay(
    node: NodeHandle,
    mock: BillingUpstream,
    path: str,
    body: dict[str, Any],
    *,
    token: str | None = None,
    key: str | None = None,
) -> Outcome:
    """One request, paid with an X-Cashu `token` or an sk- `key`; what it cost each side."""
    seen = len(mock.bills)
    if token is not None:
        credited = cashu.parse_token(token).amount * 1000
        status, headers, raw = await post(node, path, body, {"X-Cashu": token})
        account = node.ledger.find(hash_key(token))
        left = account.balance_msat if account is not None else credited
        assert left >= 0
        charged = credited - _change_sat(headers, raw) * 1000 - left if account else 0
    else:
        assert key is not None
        before = node.balance(key)
        status, headers, raw = await post(node, path, body, {"Authorization": f"Bearer {key}"})
        assert node.balance(key) >= 0
        charged = before - node.balance(key)
    return Outcome(status, raw, charged, mock.bills[seen:])
