"""Payloads the dialect tests share: a tool in both dialects, a tiny image, a Messages body."""

from __future__ import annotations

from typing import Any

from anthropic.types import ToolParam
from openai.types.chat import ChatCompletionFunctionToolParam

PNG = "iVBORw0KGgo="
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}
WEATHER_FUNCTION = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": WEATHER["input_schema"],
    },
}
# the same tool with `city` alone: a mock upstream's call of it is {"city": "mock value"}
CITY_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
CITY_WEATHER: ToolParam = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": CITY_SCHEMA,
}
CITY_WEATHER_FUNCTION: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": CITY_SCHEMA,
    },
}


def messages_body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    } | extra
