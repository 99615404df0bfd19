"""Official SDK clients whose HTTP goes through the dialect translators, in the test's thread.

The translators are pure; to show that the real SDKs accept what they produce (the `anthropic`
SDK's stream accumulator, the `openai` SDK's chunk parser), each client here gets an httpx
transport that does what a route will do: translate the SDK's request, send it over real HTTP to
a mock upstream server, translate the answer (or the whole stream, event by event) back. No part
of the node is stood in for: the translators are the code under test, the upstream is a server.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import anthropic
import httpx2
import openai

from node.dialects.chat_to_messages import EventsToChunks, chat_answer, messages_request
from node.dialects.messages_to_chat import ChunksToEvents, chat_request, messages_answer
from node.dialects.sse import CHAT_DONE, encode_anthropic_event, encode_chat_chunk, parse_events
from tests.support.anthropic_upstream import API_KEY
from tests.support.httpfetch import fetch

Handler = Callable[[httpx2.Request], httpx2.Response]
SSE = {"content-type": "text/event-stream"}


def anthropic_over_chat(upstream_url: str) -> anthropic.Anthropic:
    """An anthropic SDK client whose calls go to an OpenAI-compatible upstream's chat endpoint."""

    def handle(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        reply = fetch(f"{upstream_url}/v1/chat/completions", "POST", body=chat_request(body))
        stops = body.get("stop_sequences") or []
        if reply.status != 200:
            error = {"type": "error", "error": {"type": "api_error", "message": "upstream"}}
            return httpx2.Response(502, json=error)
        if not body.get("stream"):
            answer = messages_answer(reply.json(), model=body["model"], stop_sequences=stops)
            return httpx2.Response(200, json=answer)
        return _anthropic_stream(parse_events(reply.body), body["model"], stops)

    return _anthropic(handle)


def anthropic_over_chunks(chunks: Iterable[dict[str, Any]]) -> anthropic.Anthropic:
    """An anthropic SDK client streamed the translation of these chat chunks, whatever it asks."""
    chunk_list = list(chunks)

    def handle(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        return _anthropic_stream(chunk_list, body["model"], body.get("stop_sequences") or [])

    return _anthropic(handle)


def _anthropic_stream(
    chunks: list[dict[str, Any]], model: str, stops: list[str]
) -> httpx2.Response:
    translator = ChunksToEvents(model=model, stop_sequences=stops)
    events = [e for chunk in chunks for e in translator.feed(chunk)] + translator.finish()
    return httpx2.Response(200, headers=SSE, content=b"".join(map(encode_anthropic_event, events)))


def _anthropic(handle: Handler) -> anthropic.Anthropic:
    http = httpx2.Client(transport=httpx2.MockTransport(handle))
    return anthropic.Anthropic(base_url="http://translated", api_key="k", http_client=http,
                               max_retries=0)  # fmt: skip


def openai_over_messages(mock_url: str, default_max_tokens: int = 1024) -> openai.OpenAI:
    """An openai SDK client whose chat calls go to the mock Anthropic upstream's Messages API."""

    def handle(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        upstream = messages_request(body, default_max_tokens=default_max_tokens)
        headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
        reply = fetch(f"{mock_url}/v1/messages", "POST", headers=headers, body=upstream)
        if reply.status != 200:
            error = {"error": {"message": "upstream", "type": "upstream_error"}}
            return httpx2.Response(502, json=error)
        if not body.get("stream"):
            return httpx2.Response(200, json=chat_answer(reply.json(), model=body["model"]))
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        translator = EventsToChunks(model=body["model"], include_usage=usage)
        chunks = [c for e in parse_events(reply.body) for c in translator.feed(e)]
        chunks += translator.finish()
        content = b"".join(map(encode_chat_chunk, chunks)) + CHAT_DONE
        return httpx2.Response(200, headers=SSE, content=content)

    http = httpx2.Client(transport=httpx2.MockTransport(handle))
    return openai.OpenAI(base_url="http://translated/v1", api_key="k", http_client=http,
                         max_retries=0)  # fmt: skip
