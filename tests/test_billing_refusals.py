"""docs/billing.md's refused rows: a field that makes the upstream bill beyond what the node can
bound is a 400 naming it, in OpenAI's envelope, before any payment: the X-Cashu token stays
unspent, a key's balance untouched, and nothing reaches the upstream."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import NodeHandle
from tests.support.billing import pay
from tests.support.mints import MintInfo, RefWallet
from tests.support.servers import ThreadedServer

HI = [{"role": "user", "content": "hi"}]
AUDIO = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}


def chat(**extra: Any) -> tuple[str, dict[str, Any]]:
    return "chat/completions", {"model": "bill-model", "messages": HI, **extra}


def responses(**extra: Any) -> tuple[str, dict[str, Any]]:
    return "responses", {"model": "bill-model", "input": "hi", **extra}


REFUSED = {
    "background": ("background", responses(background=True)),
    "tools-web_search": ("tools", responses(tools=[{"type": "web_search_preview"}])),
    "tools-file_search": ("tools", responses(
        tools=[{"type": "file_search", "vector_store_ids": ["vs_1"]}])),
    "tools-code_interpreter": ("tools", responses(
        tools=[{"type": "code_interpreter", "container": {"type": "auto"}}])),
    "tools-image_generation": ("tools", responses(tools=[{"type": "image_generation"}])),
    "tools-mcp": ("tools", responses(tools=[{"type": "mcp", "server_label": "x",
                                             "server_url": "https://mcp.example"}])),
    "tools-computer": ("tools", responses(tools=[{"type": "computer_use_preview"}])),
    "chat-tools-not-a-function": ("tools", chat(tools=[{"type": "web_search"}])),
    "web_search_options": ("web_search_options", chat(web_search_options={})),
    "plugins": ("plugins", chat(plugins=[{"id": "web"}])),
    "modalities-audio": ("modalities", chat(modalities=["text", "audio"])),
    "audio": ("audio", chat(audio={"voice": "alloy", "format": "wav"})),
    "input_audio": ("messages", chat(messages=[{"role": "user", "content": [AUDIO]}])),
    "input_audio-responses": ("input", responses(input=[{"role": "user", "content": [AUDIO]}])),
    "prediction": ("prediction", chat(prediction={"type": "content", "content": "x" * 100})),
    "service_tier-priority": ("service_tier", chat(service_tier="priority")),
    "service_tier-scale": ("service_tier", responses(service_tier="scale")),
    "service_tier-odd": ("service_tier", chat(service_tier={"tier": 1})),
    "cache_control": ("messages", chat(messages=[{"role": "user", "content": [
        {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}])),
    "tool_choice-hosted": ("tool_choice", responses(tool_choice={"type": "file_search"})),
    "tool_choice-allowed-hosted": ("tool_choice", responses(tool_choice={
        "type": "allowed_tools", "mode": "auto", "tools": [{"type": "web_search_preview"}]})),
    "provider-routing": ("provider", chat(provider={"order": ["dearest"]})),
    "gemini-cached_content": ("extra_body", chat(extra_body={"google": {
        "cached_content": "cachedContents/abc"}})),
    "background-on-chat": ("background", chat(background=True)),
    "context_management-compaction": ("context_management", responses(
        context_management=[{"type": "compaction", "compact_threshold": 1000}])),
    "prompt-list-too-long": ("prompt", ("completions", {"model": "bill-model",
                                                        "prompt": ["x"] * 2049})),
    "n-too-many": ("n", chat(n=129)),
    "embeddings-empty": ("input", ("embeddings", {"model": "bill-model", "input": ""})),
    "embeddings-too-many": ("input", ("embeddings", {"model": "bill-model",
                                                     "input": ["x"] * 2049})),
    "images-stream": ("stream", ("images/generations", {"model": "bill-image", "prompt": "a cat",
                                                        "stream": True, "partial_images": 2})),
}  # fmt: skip


@pytest.mark.parametrize("name", list(REFUSED))
async def test_a_field_the_node_cannot_bound_is_refused_before_payment(
    name: str,
    billing_node: Callable[..., NodeHandle],
    billing_upstream: ThreadedServer,
    mint: MintInfo,
    ref_wallet: RefWallet,
) -> None:
    param, (path, body) = REFUSED[name]
    node, mock = billing_node(), billing_upstream.mock
    token = await ref_wallet.token(mint.url, 200)
    key = node.new_key(10**9)
    for payer in ({"token": token}, {"key": key}):
        outcome = await pay(node, mock, path, body, **payer)
        assert outcome.status == 400, outcome.body
        named = outcome.error()["param"]  # or a part of it: tools[0].vector_store_ids
        assert named == param or named.startswith((param + "[", param + ".")), named
        assert outcome.error()["type"] == "invalid_request_error"
        assert outcome.charged_msat == 0 and outcome.bills == []
    assert await ref_wallet.receive(token) == 200  # never redeemed: the client keeps it
    node.assert_clean()


async def test_service_tier_auto_goes_upstream_as_default(
    billing_node: Callable[..., NodeHandle], billing_upstream: ThreadedServer
) -> None:
    """ "auto" may pick the operator's priority or scale tier, billed above the listed price."""
    node, mock = billing_node(), billing_upstream.mock
    path, body = chat(service_tier="auto", max_tokens=5)
    outcome = await pay(node, mock, path, body, key=node.new_key(10**6))
    assert outcome.status == 200 and outcome.bills[0].sent["service_tier"] == "default"
    assert outcome.charged_msat >= outcome.billed_msat
