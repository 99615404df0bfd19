"""The mock Anthropic upstream speaks the real protocol: the official anthropic SDK against it.

messages.create, messages.stream (text, tool use with input_json_delta, thinking),
count_tokens and models.list parse; errors come in Anthropic's envelope with its status codes;
Claude Code's request shapes (tests/fixtures/claude_code) are answered and recorded as sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from node.dialects.sse import parse_events
from tests.support.anthropic_upstream import API_KEY, MockAnthropic
from tests.support.dialect_payloads import CITY_WEATHER
from tests.support.httpfetch import fetch
from tests.support.servers import ThreadedServer, serve_mock

FIXTURES = Path(__file__).parent / "fixtures" / "claude_code"
HI: Any = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    yield from serve_mock(MockAnthropic(listed=["claude-mock", "claude-other"]))


@pytest.fixture
def client(server: ThreadedServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=server.url, api_key=API_KEY, max_retries=0) as sdk:
        yield sdk


def last_request(server: ThreadedServer) -> dict[str, Any]:
    received: dict[str, Any] = server.mock.received[-1]
    return received


def test_messages_create(client: anthropic.Anthropic, server: ThreadedServer) -> None:
    message = client.messages.create(
        model="claude-mock", max_tokens=100, messages=HI, extra_body={"mock": {"input_tokens": 21}}
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text == "tok " * 10
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (21, 10)
    assert message.usage.cache_read_input_tokens == 0
    sent = last_request(server)
    assert sent["headers"]["anthropic-version"] and sent["body"]["max_tokens"] == 100


def test_messages_stream_text_with_cache_counts(client: anthropic.Anthropic) -> None:
    counts = {
        "input_tokens": 5,
        "output_tokens": 3,
        "cache_creation_input_tokens": 200,
        "cache_read_input_tokens": 1000,
    }
    with client.messages.stream(
        model="claude-mock", max_tokens=100, messages=HI, extra_body={"mock": counts}
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert pieces == ["tok "] * 3
    assert final.usage.model_dump(include=set(counts)) == counts


def test_messages_stream_tool_use(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="claude-mock",
        max_tokens=100,
        messages=HI,
        tools=[CITY_WEATHER],
        extra_body={"mock": {"tool_input": {"city": "Zürich", "note": 'say "hi"'}}},
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds.count("input_json") > 5  # the input arrives in several pieces
    tool = final.content[-1]
    assert tool.type == "tool_use" and tool.name == "get_weather"
    assert tool.input == {"city": "Zürich", "note": 'say "hi"'}
    assert final.stop_reason == "tool_use"


def test_a_tool_result_turn_is_answered_with_text(client: anthropic.Anthropic) -> None:
    first = client.messages.create(
        model="claude-mock", max_tokens=50, messages=HI, tools=[CITY_WEATHER]
    )
    tool = first.content[-1]
    assert tool.type == "tool_use"
    turns: Any = [
        *HI,
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "18 C"}],
        },
    ]
    second = client.messages.create(
        model="claude-mock", max_tokens=50, messages=turns, tools=[CITY_WEATHER]
    )
    assert second.stop_reason == "end_turn" and second.content[0].type == "text"


def test_thinking_is_streamed_when_asked(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="claude-mock",
        max_tokens=2000,
        messages=HI,
        thinking={"type": "enabled", "budget_tokens": 1024},
    ) as stream:
        final = stream.get_final_message()
    thinking = final.content[0]
    assert thinking.type == "thinking" and thinking.thinking == "Let me think about this."
    assert thinking.signature == "sig-mock"


def test_count_tokens_and_models(client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(
        model="claude-mock",
        messages=HI,
        extra_body={"mock": {"input_tokens": 9, "cache_read_input_tokens": 1}},
    )
    assert counted.input_tokens == 10
    page = client.models.list()
    assert [m.id for m in page.data] == ["claude-mock", "claude-other"]
    assert page.data[0].type == "model" and page.has_more is False


@pytest.mark.parametrize(
    ("model", "error", "status", "kind"),
    [
        ("claude-fail500", anthropic.InternalServerError, 500, "api_error"),
        ("claude-overloaded", anthropic.APIStatusError, 529, "overloaded_error"),
        ("claude-fail429", anthropic.RateLimitError, 429, "rate_limit_error"),
        ("claude-notfound", anthropic.NotFoundError, 404, "not_found_error"),
    ],
)
def test_failures_by_model_name(
    client: anthropic.Anthropic,
    model: str,
    error: type[anthropic.APIStatusError],
    status: int,
    kind: str,
) -> None:
    with pytest.raises(error) as failed:
        client.messages.create(model=model, max_tokens=10, messages=HI)
    assert failed.value.status_code == status
    body = failed.value.body
    assert isinstance(body, dict)
    assert body == {"type": "error", "error": {"type": kind, "message": body["error"]["message"]}}


def test_a_mid_stream_error_event_raises_in_the_sdk(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):  # noqa: SIM117
        with client.messages.stream(model="claude-midstream", max_tokens=10, messages=HI) as s:
            list(s)


def test_the_key_and_version_are_checked(server: ThreadedServer) -> None:
    body = {"model": "claude-mock", "max_tokens": 5, "messages": HI}
    version = {"anthropic-version": "2023-06-01"}
    wrong = fetch(f"{server.url}/v1/messages", "POST", {"x-api-key": "nope", **version}, body)
    assert wrong.status == 401
    assert wrong.json()["error"]["type"] == "authentication_error"
    unversioned = fetch(f"{server.url}/v1/messages", "POST", {"x-api-key": API_KEY}, body)
    assert unversioned.status == 400
    assert unversioned.json()["type"] == "error"
    for auth in ({"x-api-key": API_KEY}, {"Authorization": f"Bearer {API_KEY}"}):
        assert fetch(f"{server.url}/v1/messages", "POST", auth | version, body).status == 200
    missing = fetch(
        f"{server.url}/v1/messages",
        "POST",
        {"x-api-key": API_KEY, **version},
        {"model": "claude-mock", "messages": HI},
    )
    assert missing.status == 400 and "max_tokens" in missing.json()["error"]["message"]


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_claude_code_requests_are_answered(server: ThreadedServer, name: str) -> None:
    request = json.loads((FIXTURES / name).read_text())
    headers = {k: v.replace("<TOKEN>", API_KEY) for k, v in request["headers"].items()}
    reply = fetch(server.url + request["path"], request["method"], headers, request["body"])
    assert reply.status == 200
    sent = last_request(server)
    assert sent["query"] == {"beta": "true"}
    assert sent["headers"]["anthropic-beta"] == request["headers"]["anthropic-beta"]
    if name == "count_tokens.json":
        assert reply.json()["input_tokens"] > 0
        return
    if not request["body"].get("stream"):
        assert reply.json()["type"] == "message"
        return
    kinds = [e["type"] for e in parse_events(reply.body)]
    assert kinds[0] == "message_start" and kinds[1] == "content_block_start"
    assert kinds[2] == "ping" and kinds[-2:] == ["message_delta", "message_stop"]
    assert "thinking_delta" in reply.body.decode()  # both fixtures ask for thinking


def test_how_the_sdk_sends_its_key(server: ThreadedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK 2.x sends `api_key` as a bearer token; a client that must send `x-api-key` (as
    the 0.x SDKs and Anthropic's docs do) sets the header itself."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"):  # the SDK's fallbacks
        monkeypatch.delenv(name, raising=False)
    with anthropic.Anthropic(base_url=server.url, api_key=API_KEY, max_retries=0) as bearer:
        bearer.messages.create(model="claude-mock", max_tokens=5, messages=HI)
    sent = last_request(server)["headers"]
    assert sent["authorization"] == f"Bearer {API_KEY}" and "x-api-key" not in sent
    assert sent["anthropic-version"]
    headers = {"x-api-key": API_KEY}
    with anthropic.Anthropic(
        base_url=server.url, api_key=None, default_headers=headers, max_retries=0
    ) as keyed:
        keyed.messages.create(model="claude-mock", max_tokens=5, messages=HI)
    sent = last_request(server)["headers"]
    assert sent["x-api-key"] == API_KEY and "authorization" not in sent
