"""Property: whatever the request body — random unicode messages, images, files, n, best_of,
output limits, prompt lists, token ids, tools, streams, service tiers — the node never charges
less than the upstream bills (an upstream that bills the way OpenAI and vLLM document), never
answers a 5xx, and no account goes negative. Small balances, so the reservation is what caps
the charge. `make fuzz` raises the example count (NUTGATE_FUZZ_EXAMPLES)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import NodeHandle
from tests.support.billing import pay
from tests.support.servers import ThreadedServer

EXAMPLES = int(os.environ.get("NUTGATE_FUZZ_EXAMPLES", "8")) * 3
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=300)
MODELS = st.sampled_from(["bill-model", "bill-vision-mini", "bill-small-context"])
LIMIT = st.none() | st.integers(1, 1200)
DETAIL = st.sampled_from(["low", "high", "auto"])
IMAGE_URL = st.integers(1, 8).map(lambda t: f"https://img.example/x.png?tiles={t}")
PDF = "data:application/pdf;base64,JVBERi0xLjQK"

CHAT_PART = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, TEXT),
    st.builds(lambda u, d: {"type": "image_url", "image_url": {"url": u, "detail": d}},
              IMAGE_URL, DETAIL),
    st.just({"type": "file", "file": {"filename": "a.pdf", "file_data": PDF}}),
)  # fmt: skip
RESPONSES_PART = st.one_of(
    st.builds(lambda t: {"type": "input_text", "text": t}, TEXT),
    st.builds(lambda u, d: {"type": "input_image", "image_url": u, "detail": d},
              IMAGE_URL, DETAIL),
    st.just({"type": "input_file", "filename": "a.pdf", "file_data": PDF}),
)  # fmt: skip
MESSAGE = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["system", "user", "assistant"]),
        "content": TEXT | st.lists(CHAT_PART, min_size=1, max_size=3),
    }
)
TOOL = st.builds(
    lambda name, text: {"type": "function", "function": {
        "name": name, "description": text, "parameters": {"type": "object", "properties": {
            "q": {"type": "string", "description": text}}}}},
    st.from_regex(r"[a-z_]{1,20}", fullmatch=True), TEXT,
)  # fmt: skip
TOKEN_IDS = st.lists(st.integers(0, 200_000), min_size=1, max_size=50)
PROMPT = st.one_of(
    TEXT,
    st.lists(TEXT, min_size=1, max_size=60),
    TOKEN_IDS,
    st.lists(TOKEN_IDS, min_size=1, max_size=20),
)
OPTIONS = {
    "stream": st.booleans(),
    "service_tier": st.sampled_from(["auto", "default", "flex"]),
    "temperature": st.floats(0, 2),
}


def body(required: dict[str, Any], **optional: Any) -> st.SearchStrategy[dict[str, Any]]:
    """`required` always, any of `optional` (and of OPTIONS) sometimes; None-valued dropped."""
    return st.fixed_dictionaries(required, optional={**OPTIONS, **optional}).map(
        lambda b: {k: v for k, v in b.items() if v is not None}
    )


CHAT = body(
    {"model": MODELS, "messages": st.lists(MESSAGE, min_size=1, max_size=5)},
    n=st.integers(1, 4),
    max_tokens=LIMIT,
    max_completion_tokens=LIMIT,
    tools=st.lists(TOOL, min_size=1, max_size=3),
    logprobs=st.booleans(),
    top_logprobs=st.integers(0, 20),
    reasoning_effort=st.sampled_from(["low", "medium", "high"]),
)
COMPLETIONS = body(
    {"model": MODELS, "prompt": PROMPT},
    n=st.integers(1, 3),
    best_of=st.integers(3, 5),
    max_tokens=LIMIT,
    echo=st.booleans(),
    suffix=TEXT,
)
RESPONSES = body(
    {
        "model": MODELS,
        "input": TEXT | st.lists(
            st.fixed_dictionaries({"role": st.just("user"),
                                   "content": st.lists(RESPONSES_PART, min_size=1, max_size=3)}),
            min_size=1, max_size=3),
    },
    instructions=TEXT,
    max_output_tokens=LIMIT,
)  # fmt: skip
EMBEDDINGS = body({"model": MODELS, "input": PROMPT})
REQUESTS = st.one_of(
    st.tuples(st.just("chat/completions"), CHAT),
    st.tuples(st.just("completions"), COMPLETIONS),
    st.tuples(st.just("responses"), RESPONSES),
    st.tuples(st.just("embeddings"), EMBEDDINGS),
)
BALANCES = st.integers(1_000, 400_000)  # msat: from less than a request to a few hundred sat


def test_charge_covers_the_upstream_bill_for_any_request_body(
    billing_node: Callable[..., NodeHandle], billing_upstream: ThreadedServer
) -> None:
    node, mock = billing_node(), billing_upstream.mock

    @FUZZ
    @given(request=REQUESTS, balance=BALANCES)
    def one(request: tuple[str, dict[str, Any]], balance: int) -> None:
        path, sent = request
        if path == "completions" and "best_of" in sent:
            sent["best_of"] = max(sent["best_of"], sent.get("n", 1))
        outcome = asyncio.run(pay(node, mock, path, sent, key=node.new_key(balance)))
        event(f"{path} {outcome.status}")  # see them with --hypothesis-show-statistics
        assert outcome.status < 500, outcome.body[:300]
        assert outcome.charged_msat >= outcome.billed_msat, (sent, outcome.bills)
        if outcome.status != 200:
            assert outcome.bills == [], outcome.body[:300]

    one()
    node.assert_clean()
