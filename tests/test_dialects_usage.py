"""Anthropic's four usage counts read into one record, tolerant of odd input, and mapped to
OpenAI's usage (`node.dialects.usage`)."""

from __future__ import annotations

from typing import Any

import pytest

from node.dialects.usage import (
    AnthropicUsage,
    merge_stream_usage,
    read_anthropic_usage,
    read_chat_usage,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"input_tokens": 5, "output_tokens": 7}, AnthropicUsage(5, 7)),
        (
            {
                "input_tokens": 5,
                "output_tokens": 7,
                "cache_creation_input_tokens": 11,
                "cache_read_input_tokens": None,
            },
            AnthropicUsage(5, 7, 11, 0),
        ),
        ({"input_tokens": 5.2, "output_tokens": 7.0}, AnthropicUsage(6, 7)),
        ({"input_tokens": 5}, None),
        ({"output_tokens": 7}, None),
        ({"input_tokens": -1, "output_tokens": 7}, None),
        ({"input_tokens": "5", "output_tokens": 7}, None),
        ({"input_tokens": True, "output_tokens": 7}, None),
        ({"input_tokens": 5, "output_tokens": 7, "cache_read_input_tokens": "lots"}, None),
        ({"input_tokens": 5, "output_tokens": float("nan")}, None),
        (None, None),
        ([5, 7], None),
    ],
)
def test_anthropic_usage_is_read_or_none(raw: Any, expected: AnthropicUsage | None) -> None:
    assert read_anthropic_usage(raw) == expected


def test_the_four_counts_map_to_openai_usage() -> None:
    usage = AnthropicUsage(
        input_tokens=10,
        output_tokens=20,
        cache_creation_input_tokens=300,
        cache_read_input_tokens=4000,
    )
    assert usage.prompt_tokens == 4310
    assert usage.as_chat_usage() == {
        "prompt_tokens": 4310,
        "completion_tokens": 20,
        "total_tokens": 4330,
        "prompt_tokens_details": {"cached_tokens": 4000},
        "cache_creation_input_tokens": 300,
        "cache_read_input_tokens": 4000,
    }
    assert (
        read_chat_usage(
            {
                "prompt_tokens": 50,
                "completion_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": 60},
            }
        )
        is None
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"prompt_tokens": 120, "completion_tokens": 30}, AnthropicUsage(120, 30)),
        (
            {
                "prompt_tokens": 120,
                "completion_tokens": 30,
                "prompt_tokens_details": {"cached_tokens": 100},
            },
            AnthropicUsage(20, 30, 0, 100),
        ),
        (
            {"prompt_tokens": 120, "prompt_tokens_details": None, "completion_tokens": 3},
            AnthropicUsage(120, 3),
        ),
        ({"prompt_tokens": 120}, None),
        (
            {
                "prompt_tokens": 50,
                "completion_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": 60},
            },
            None,
        ),
        (
            {
                "prompt_tokens": 50,
                "completion_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": "x"},
            },
            None,
        ),
        ("usage", None),
    ],
)
def test_openai_usage_is_read_in_anthropic_terms(raw: Any, expected: AnthropicUsage | None) -> None:
    assert read_chat_usage(raw) == expected


def test_stream_usage_reports_are_cumulative() -> None:
    start = {"input_tokens": 7, "output_tokens": 1, "cache_read_input_tokens": 90}
    merged = merge_stream_usage({}, start)
    merged = merge_stream_usage(merged, {"output_tokens": 12, "cache_read_input_tokens": None})
    merged = merge_stream_usage(merged, "odd")
    assert merged == {"input_tokens": 7, "output_tokens": 12, "cache_read_input_tokens": 90}
    assert read_anthropic_usage(merged) == AnthropicUsage(7, 12, 0, 90)
