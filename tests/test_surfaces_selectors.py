"""ChatBotKit's model selectors and the legacy function-calling format, over the OpenAI SDK."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from openai.types.chat.completion_create_params import Function

from tests.conftest import NodeHandle
from tests.support.servers import ThreadedServer
from tests.test_spine import EXACT, client, hello

BALANCE = 1_000_000
WEATHER: Function = {
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
def bot_node(make_node: Callable[..., NodeHandle]) -> NodeHandle:
    preset = {"name": "pirate", "model": "test-model", "system_prompt": "Talk like a pirate."}
    return make_node(presets=[preset])


def sent(upstream: ThreadedServer) -> dict[str, Any]:
    body: dict[str, Any] = upstream.mock.received[-1]["body"]
    return body


def test_model_name_selector_is_the_plain_model(
    bot_node: NodeHandle, upstream: ThreadedServer
) -> None:
    key = bot_node.new_key(BALANCE)
    answer = client(bot_node, key).chat.completions.create(
        **hello("model/name=test-model"), extra_body=EXACT
    )
    assert answer.choices[0].message.content
    assert sent(upstream)["model"] == "test-model"
    assert BALANCE - bot_node.balance(key) == 2000  # the model's own price
    bot_node.assert_clean()


def test_bot_id_selector_extends_the_presets_system_prompt(
    bot_node: NodeHandle, upstream: ThreadedServer
) -> None:
    key = bot_node.new_key(BALANCE)
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    client(bot_node, key).chat.completions.create(model="bot/id=pirate", messages=messages)
    body = sent(upstream)
    assert body["model"] == "test-model"
    contents = [m["content"] for m in body["messages"]]
    assert contents == ["Talk like a pirate.", "Be brief.", "hi"]  # extended, not replaced
    bot_node.assert_clean()


@pytest.mark.parametrize(
    "selector",
    ["conversation/id=abc", "conversation/new", "agent/id=x", "bot/name=pirate", "bot/id=nope",
     "model/name=", "model/name=bot/id=pirate", "model/name=preset/pirate"],
)  # fmt: skip
def test_an_invalid_selector_is_a_400(bot_node: NodeHandle, selector: str) -> None:
    key = bot_node.new_key(BALANCE)
    with pytest.raises(openai.BadRequestError) as caught:
        client(bot_node, key).chat.completions.create(**hello(selector))
    assert caught.value.code == "invalid_model_selector"
    assert bot_node.balance(key) == BALANCE


def test_selectors_name_models_everywhere(bot_node: NodeHandle) -> None:
    key = bot_node.new_key(BALANCE)
    api = client(bot_node, key)
    assert api.models.retrieve("model/name=test-model").id == "test-model"
    api.completions.create(model="model/name=test-model", prompt="hi", max_tokens=5)
    api.embeddings.create(model="model/name=test-model", input="hi")
    with pytest.raises(openai.BadRequestError):
        api.embeddings.create(model="conversation/id=1", input="hi")
    bot_node.assert_clean()


def test_legacy_functions_over_an_upstream_that_speaks_tools(
    bot_node: NodeHandle, upstream: ThreadedServer
) -> None:
    key = bot_node.new_key(BALANCE)
    history: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": None,
         "function_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"role": "function", "name": "get_weather", "content": "sunny"},
        {"role": "user", "content": "and in Rome?"},
    ]  # fmt: skip
    answer = client(bot_node, key).chat.completions.create(
        model="test-model",
        messages=history,
        functions=[WEATHER],
        function_call={"name": "get_weather"},
        extra_body={"mock": {"arguments": '{"city": "Rome"}'}},
    )
    body = sent(upstream)
    assert "functions" not in body and body["tools"] == [{"type": "function", "function": WEATHER}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    call_id = body["messages"][1]["tool_calls"][0]["id"]
    assert body["messages"][2] == {"role": "tool", "tool_call_id": call_id, "content": "sunny"}
    choice = answer.choices[0]
    assert choice.finish_reason == "function_call"
    assert choice.message.function_call is not None
    assert choice.message.function_call.name == "get_weather"
    assert json.loads(choice.message.function_call.arguments) == {"city": "Rome"}
    assert not choice.message.tool_calls
    assert bot_node.balance(key) < BALANCE
    bot_node.assert_clean()


def test_legacy_functions_streamed(bot_node: NodeHandle) -> None:
    key = bot_node.new_key(BALANCE)
    chunks = list(
        client(bot_node, key).chat.completions.create(
            **hello(),
            functions=[WEATHER],
            function_call={"name": "get_weather"},
            stream=True,
            extra_body={"mock": {"arguments": '{"city": "Oslo"}'}},
        )
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    calls = [d.function_call for d in deltas if d.function_call is not None]
    assert calls and calls[0].name == "get_weather"
    assert json.loads("".join(c.arguments or "" for c in calls)) == {"city": "Oslo"}
    assert not any(d.tool_calls for d in deltas)
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish and set(finish) == {"function_call"}
    usage = chunks[-1].usage
    assert usage is not None and usage.model_extra and usage.model_extra["cost_msat"] > 0
    bot_node.assert_clean()


def test_bad_legacy_functions_are_a_400(bot_node: NodeHandle) -> None:
    key = bot_node.new_key(BALANCE)
    api = client(bot_node, key)
    with pytest.raises(openai.BadRequestError) as caught:
        api.chat.completions.create(**hello(), extra_body={"functions": "nope"})
    assert caught.value.param == "functions"
    with pytest.raises(openai.BadRequestError) as caught:
        api.chat.completions.create(
            **hello(),
            functions=[WEATHER],
            extra_body={"function_call": 7},
        )
    assert caught.value.param == "function_call"
    assert bot_node.balance(key) == BALANCE
