"""An OpenAI-compatible stand-in for an LLM provider, for tests and the dev stack.

Deterministic: usage is computed from the request (or given in a `mock` object in the body),
so costs can be asserted exactly. Behaviour is chosen by the model name:

    *fail500*   -> HTTP 500            *fail429*  -> HTTP 429          *badjson* -> not JSON
    *nousage*   -> no usage anywhere   *hang*     -> never answers     *cut*     -> stream breaks
    *slow*      -> stream pauses `mock.pause_s` (default 2 s) after its first chunk

`mock` fields: prompt_tokens, completion_tokens, pause_s; `report_usage` (any JSON) is sent as
the `usage` object instead of the true one (absurd or negative counts). Every request received
is recorded (path, headers, JSON body) in `MockUpstream.received`.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

from aiohttp import web

WORD = "tok "


class MockUpstream:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.app = web.Application()
        self.app.add_routes(
            [
                web.post("/v1/chat/completions", self.chat),
                web.get("/v1/models", self.models),
            ]
        )

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "mock-model"}]})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.received.append({"path": request.path, "headers": dict(request.headers), "body": body})
        model = str(body.get("model", ""))
        if "hang" in model:
            await asyncio.sleep(3)  # longer than the impatient upstream waits
        if "fail500" in model:
            return web.json_response({"error": {"message": "boom"}}, status=500)
        if "fail429" in model:
            return web.json_response(
                {"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "2"}
            )
        if "badjson" in model:
            return web.Response(text="<html>oops</html>", content_type="text/html")
        prompt, completion = usage_for(body)
        if body.get("stream"):
            return await self._stream(request, body, prompt, completion)
        answer = {
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": WORD * completion},
                    "finish_reason": "stop",
                }
            ],
        }
        if "nousage" not in model:
            answer["usage"] = _reported(body, prompt, completion)
        return web.json_response(answer)

    async def _stream(
        self, request: web.Request, body: dict[str, Any], prompt: int, completion: int
    ) -> web.StreamResponse:
        model = str(body["model"])
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        pause = float((body.get("mock") or {}).get("pause_s", 2.0))
        for i in range(completion):
            await out.write(_event(_chunk(model, {"content": WORD})))
            if i == 0 and "slow" in model:
                await asyncio.sleep(pause)
            if i == completion // 2 and "cut" in model:
                assert request.transport is not None
                request.transport.close()
                return out
        await out.write(_event(_chunk(model, {}, finish="stop")))
        options = body.get("stream_options") or {}
        if options.get("include_usage") and "nousage" not in model:
            final = _chunk(model, {}) | {
                "choices": [],
                "usage": _reported(body, prompt, completion),
            }
            await out.write(_event(final))
        await out.write(b"data: [DONE]\n\n")
        await out.write_eof()
        return out


def usage_for(body: dict[str, Any]) -> tuple[int, int]:
    mock = body.get("mock") or {}
    text = "".join(str(m.get("content", "")) for m in body.get("messages") or [])
    prompt = int(mock.get("prompt_tokens", math.ceil(len(text) / 4)))
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or 10
    completion = int(mock.get("completion_tokens", min(10, limit)))
    return prompt, completion


def _reported(body: dict[str, Any], prompt: int, completion: int) -> Any:
    mock = body.get("mock") or {}
    return mock["report_usage"] if "report_usage" in mock else _usage(prompt, completion)


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _event(chunk: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(chunk)}\n\n".encode()
