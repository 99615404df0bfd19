"""A router model: `[[routers]] name = "auto"` picks a candidate per request."""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.conftest import NodeHandle
from tests.support.servers import ThreadedServer
from tests.test_spine import PAD, client, hello

BALANCE = 10_000_000
SMALL = {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0, "context_length": 300}
BIG = {"input_usd_per_mtok": 3.0, "output_usd_per_mtok": 6.0, "context_length": 100_000}
MOCK = {"prompt_tokens": 1000, "completion_tokens": 500, **PAD}


@pytest.fixture
def router_node(make_node: Callable[..., NodeHandle]) -> NodeHandle:
    return make_node(
        models=[
            {"id": "test-small", "upstream_model": "test-small", **SMALL},
            {"id": "test-big", "upstream_model": "test-big", **BIG},
        ],
        routers=[{"name": "auto", "candidates": ["test-big", "test-small"],
                  "description": "the cheapest that fits"}],
    )  # fmt: skip


def sent(upstream: ThreadedServer) -> str:
    return str(upstream.mock.received[-1]["body"]["model"])


def test_a_short_prompt_goes_to_the_cheapest(
    router_node: NodeHandle, upstream: ThreadedServer
) -> None:
    key = router_node.new_key(BALANCE)
    raw = client(router_node, key).chat.completions.with_raw_response.create(
        **hello("auto", max_tokens=500), extra_body={"mock": {"prompt_tokens": 100,
                                                              "completion_tokens": 500}}
    )  # fmt: skip
    answer = raw.parse()
    assert sent(upstream) == "test-small" == answer.model == raw.headers["x-model"]
    assert BALANCE - router_node.balance(key) == 1100  # 100 in at 1 msat, 500 out at 2
    router_node.assert_clean()


def test_a_prompt_past_the_cheapest_context_goes_to_the_next(
    router_node: NodeHandle, upstream: ThreadedServer
) -> None:
    key = router_node.new_key(BALANCE)
    long: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "word " * 400}
    ]  # ~500 tokens: past test-small's 300
    raw = client(router_node, key).chat.completions.with_raw_response.create(
        model="auto",
        messages=long,
        max_tokens=500,
        extra_body={"mock": MOCK},
    )
    assert sent(upstream) == "test-big" == raw.headers["x-model"] == raw.parse().model
    assert BALANCE - router_node.balance(key) == 6000  # 1000 in at $3 + 500 out at $6 per Mtok
    router_node.assert_clean()


def test_the_router_is_listed_and_refuses_what_nothing_fits(router_node: NodeHandle) -> None:
    key = router_node.new_key(BALANCE)
    api = client(router_node, key)
    listed = {m.id: m.model_extra or {} for m in api.models.list()}
    assert listed["auto"]["description"] == "the cheapest that fits"
    huge: list[ChatCompletionMessageParam] = [{"role": "user", "content": "word " * 100_000}]
    with pytest.raises(openai.BadRequestError) as caught:
        api.chat.completions.create(model="auto", messages=huge)
    assert caught.value.code == "no_route"
    assert router_node.balance(key) == BALANCE
