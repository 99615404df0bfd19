"""Adversarial: request shapes whose upstream bill the reservation does not bound.

Rule (issue 20, docs/billing.md): every request field that changes what an upstream bills is
priced, bounded, or refused; an upstream billing per the table never bills more than the node
charged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import NodeHandle
from tests.support.billing import pay
from tests.support.servers import ThreadedServer


@pytest.mark.parametrize("path", ["chat/completions", "responses", "messages"])
async def test_a_request_without_service_tier_goes_upstream_as_default(
    billing_node: Callable[..., NodeHandle], billing_upstream: ThreadedServer, path: str
) -> None:
    """Attack (or a careless operator): OpenAI documents `service_tier` "When not set, the
    default behavior is 'auto'" (OpenRouter: "default if omitted: auto"), and 'auto' uses the
    service tier configured in the operator's Project settings: a project set to priority
    processing bills every such request at ~2x the listed price. node/billing.py rewrites an
    explicit "auto" to "default" for that very reason (docs/billing.md, service_tier row), but
    forwards a request without the field unchanged, which means the same thing upstream.

    Impact: every request of every client that omits the field (the OpenAI SDK's default),
    billed up to 2x what the node charged, on such a project. The same for a Messages request
    translated into chat for an OpenAI-compatible upstream: the translation carries no tier.

    Expected: absent and "auto" are treated alike: the node sends "default" (to upstreams that
    take OpenAI's tiers), or docs/billing.md says the operator's project must keep the default
    tier and the node checks the answer's `service_tier` (charging a priority answer at its
    price) (node/billing.py `_refuse_billed_extras`).
    """
    node, mock = billing_node(), billing_upstream.mock
    prompt: dict[str, Any] = (
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
        if path in ("chat/completions", "messages")  # messages: translated into chat
        else {"input": "hi", "max_output_tokens": 16}
    )
    outcome = await pay(
        node, mock, path, {"model": "bill-model", **prompt}, key=node.new_key(10**6)
    )
    assert outcome.status == 200, outcome.body
    assert outcome.bills[0].sent.get("service_tier") == "default"
