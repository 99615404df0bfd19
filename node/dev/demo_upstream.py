"""The demo upstream of `nutgate run`: an OpenAI-compatible stand-in that returns canned text.

NOT A REAL LLM. It lets a newcomer see the whole paid path (token -> node -> upstream -> charge)
and try every endpoint it serves without an API key (see demo_answers for what it says):
    POST /v1/chat/completions  plain and streamed (role in the first delta, one id per answer,
                               usage with `stream_options.include_usage`), tools called
    POST /v1/completions       plain
    POST /v1/embeddings        floats or base64
    POST /v1/responses         plain and streamed (response.* events)
    GET  /v1/models            the models it is told to list
Anything else is a 404, as OpenAI answers an unknown route.

    python -m node.dev.demo_upstream --port 8001
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from aiohttp import web

from node.dev import demo_answers as demo
from node.dev.demo_answers import answer_words

__all__ = ["ENDPOINTS", "LABEL", "DemoUpstream", "answer_words"]

LABEL = "demo upstream — canned answers, not a real LLM"
ENDPOINTS = ["chat/completions", "completions", "embeddings", "responses"]  # what it serves


class DemoUpstream:
    def __init__(self, models: list[str] | None = None) -> None:
        self.models = models or ["demo"]
        self.app = web.Application()
        self.app.add_routes(
            [
                web.post("/v1/chat/completions", self.chat),
                web.post("/v1/completions", self.completions),
                web.post("/v1/embeddings", self.embeddings),
                web.post("/v1/responses", self.responses),
                web.get("/v1/models", self.list_models),
            ]
        )

    async def list_models(self, request: web.Request) -> web.Response:
        data = [{"id": m, "object": "model", "owned_by": "demo", "created": 0} for m in self.models]
        return web.json_response({"object": "list", "data": data})

    async def completions(self, request: web.Request) -> web.Response:
        body = await _body(request)
        prompt = str(body.get("prompt") or "")
        words = answer_words(prompt, demo.limit(body))
        choice = {"index": 0, "text": "".join(words), "finish_reason": "stop", "logprobs": None}
        answer = _envelope("text_completion", demo.new_id("cmpl-demo"), body, [choice])
        return web.json_response(answer | {"usage": demo.usage(demo.tokens(prompt), len(words))})

    async def embeddings(self, request: web.Request) -> web.Response:
        return web.json_response(demo.embeddings(await _body(request)))

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        everything, last = demo.chat_prompt(body)
        prompt, cap, said = (
            demo.tokens(everything),
            demo.limit(body),
            demo.text_of(last.get("content")),
        )
        answer = Chat(body, demo.new_id("chatcmpl-demo"))
        function = demo.tool_to_call(body, last)
        if function is not None:
            call = demo.tool_call(function, said)
            used = min(cap, demo.tokens(call["function"]["arguments"]) + 5)
            if body.get("stream"):
                return await answer.stream_call(request, call, prompt, used)
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            return web.json_response(answer.whole(message, "tool_calls", prompt, used))
        opening = demo.TOOL_ANSWER if last.get("role") == "tool" else demo.ANSWER
        words = answer_words(said, cap, opening)
        if body.get("stream"):
            return await answer.stream_text(request, words, prompt)
        message = {"role": "assistant", "content": "".join(words), "refusal": None}
        return web.json_response(answer.whole(message, "stop", prompt, len(words)))

    async def responses(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        everything, last = demo.responses_prompt(body)
        words = answer_words(last, demo.limit(body, "max_output_tokens"))
        use = demo.responses_usage(demo.tokens(everything), len(words))
        rid, mid = demo.new_id("resp_demo"), demo.new_id("msg_demo")
        if not body.get("stream"):
            return web.json_response(demo.response(body, rid, mid, "".join(words), use))
        out = await _event_stream(request)
        events = ResponseEvents(out)
        await events.send("response.created", response=demo.response(body, rid, mid, None, None))
        item = {"type": "message", "id": mid, "status": "in_progress", "role": "assistant"}
        await events.send("response.output_item.added", output_index=0, item=item | {"content": []})
        at = {"item_id": mid, "output_index": 0, "content_index": 0}
        empty = {"type": "output_text", "text": "", "annotations": []}
        await events.send("response.content_part.added", **at, part=empty)
        for word in words:
            await events.send("response.output_text.delta", **at, delta=word)
        text = "".join(words)
        await events.send("response.output_text.done", **at, text=text)
        await events.send("response.content_part.done", **at, part=empty | {"text": text})
        done = demo.response(body, rid, mid, text, use)
        await events.send("response.output_item.done", output_index=0, item=done["output"][0])
        await events.send("response.completed", response=done)
        await out.write_eof()
        return out


class Chat:
    """One chat answer: one id and `created` for all its chunks, as OpenAI sends them."""

    def __init__(self, body: dict[str, Any], answer_id: str) -> None:
        self.body, self.id, self.created = body, answer_id, int(time.time())

    def whole(self, message: dict[str, Any], finish: str, prompt: int, used: int) -> dict[str, Any]:
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        answer = _envelope("chat.completion", self.id, self.body, [choice], self.created)
        return answer | {"usage": demo.usage(prompt, used)}

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _data(_envelope("chat.completion.chunk", self.id, self.body, [choice], self.created))

    async def stream_text(
        self, request: web.Request, words: list[str], prompt: int
    ) -> web.StreamResponse:
        out = await _event_stream(request)
        await out.write(self.chunk({"role": "assistant", "content": "", "refusal": None}))
        for word in words:
            await out.write(self.chunk({"content": word}))
        return await self._end(out, "stop", prompt, len(words))

    async def stream_call(
        self, request: web.Request, call: dict[str, Any], prompt: int, used: int
    ) -> web.StreamResponse:
        out = await _event_stream(request)
        function = call["function"]
        head = call | {"index": 0, "function": {"name": function["name"], "arguments": ""}}
        await out.write(self.chunk({"role": "assistant", "content": None, "tool_calls": [head]}))
        arguments = function["arguments"]
        for start in range(0, len(arguments), 8):
            piece = {"index": 0, "function": {"arguments": arguments[start : start + 8]}}
            await out.write(self.chunk({"tool_calls": [piece]}))
        return await self._end(out, "tool_calls", prompt, used)

    async def _end(
        self, out: web.StreamResponse, finish: str, prompt: int, used: int
    ) -> web.StreamResponse:
        await out.write(self.chunk({}, finish))
        if (self.body.get("stream_options") or {}).get("include_usage"):
            last = _envelope("chat.completion.chunk", self.id, self.body, [], self.created)
            await out.write(_data(last | {"usage": demo.usage(prompt, used)}))
        await out.write(b"data: [DONE]\n\n")
        await out.write_eof()
        return out


class ResponseEvents:
    """A Responses stream: `event:` and `data:` lines, numbered."""

    def __init__(self, out: web.StreamResponse) -> None:
        self.out, self.number = out, 0

    async def send(self, kind: str, **fields: Any) -> None:
        event = {"type": kind, "sequence_number": self.number} | fields
        self.number += 1
        await self.out.write(f"event: {kind}\ndata: {json.dumps(event)}\n\n".encode())


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": {"message": "not JSON"}}') from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": {"message": "not a JSON object"}}')
    return body


async def _event_stream(request: web.Request) -> web.StreamResponse:
    out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await out.prepare(request)
    return out


def _envelope(
    kind: str,
    answer_id: str,
    body: dict[str, Any],
    choices: list[dict[str, Any]],
    created: int | None = None,
) -> dict[str, Any]:
    return {
        "id": answer_id,
        "object": kind,
        "created": created or int(time.time()),
        "model": str(body.get("model", "demo")),
        "system_fingerprint": "demo",
        "choices": choices,
    }


def _data(chunk: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(chunk)}\n\n".encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=LABEL)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    print(f"{LABEL}: http://{args.host}:{args.port}/v1", flush=True)
    web.run_app(DemoUpstream().app, host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
