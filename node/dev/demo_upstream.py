"""The demo upstream of `nutgate run`: an OpenAI-compatible stand-in that returns canned text.

NOT A REAL LLM. It lets a newcomer see the whole paid path (token -> node -> upstream -> charge)
without an API key: every answer is a fixed sentence that echoes the start of the last message.
Usage is counted from the request and the answer (~4 characters per token), so the node charges
real, if tiny, amounts. Endpoints: POST /v1/chat/completions (plain and streamed, with
`stream_options.include_usage`), POST /v1/completions, GET /v1/models.

    python -m node.dev.demo_upstream --port 8001
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

from aiohttp import web

LABEL = "demo upstream — canned answers, not a real LLM"
ANSWER = (
    "Hello from nutgate's demo upstream. This is a canned answer, not a real LLM: "
    "your ecash paid for it all the same. You said: "
)
ECHO_CHARS = 60


def tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def answer_words(prompt_text: str, limit: int) -> list[str]:
    """The canned sentence plus an echo, cut to `limit` words (one word ~ one token here)."""
    echo = " ".join(prompt_text.split())[:ECHO_CHARS] or "(nothing)"
    words = (ANSWER + f"“{echo}”").split(" ")[: max(1, limit)]
    return [w + " " for w in words[:-1]] + words[-1:]


def _limit(body: dict[str, Any]) -> int:
    value = body.get("max_completion_tokens") or body.get("max_tokens") or 256
    return int(value) if isinstance(value, int) and value > 0 else 256


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _last_text(body: dict[str, Any]) -> tuple[str, str]:
    """(all prompt text, the last message's text) of a chat or completions request."""
    if "prompt" in body:
        prompt = str(body.get("prompt") or "")
        return prompt, prompt
    texts = [str(m.get("content") or "") for m in body.get("messages") or [] if isinstance(m, dict)]
    return "".join(texts), texts[-1] if texts else ""


class DemoUpstream:
    def __init__(self) -> None:
        self.app = web.Application()
        self.app.add_routes(
            [
                web.post("/v1/chat/completions", self.chat),
                web.post("/v1/completions", self.completions),
                web.get("/v1/models", self.models),
            ]
        )

    async def models(self, request: web.Request) -> web.Response:
        data = [{"id": "demo", "object": "model", "owned_by": "demo", "created": 0}]
        return web.json_response({"object": "list", "data": data})

    async def completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        everything, last = _last_text(body)
        words = answer_words(last, _limit(body))
        choice = {"index": 0, "text": "".join(words), "finish_reason": "stop", "logprobs": None}
        return web.json_response(
            _envelope("text_completion", body, [choice])
            | {"usage": _usage(tokens(everything), len(words))}
        )

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        everything, last = _last_text(body)
        words = answer_words(last, _limit(body))
        prompt = tokens(everything)
        if body.get("stream"):
            return await self._stream(request, body, words, prompt)
        message = {"role": "assistant", "content": "".join(words)}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return web.json_response(
            _envelope("chat.completion", body, [choice]) | {"usage": _usage(prompt, len(words))}
        )

    async def _stream(
        self, request: web.Request, body: dict[str, Any], words: list[str], prompt: int
    ) -> web.StreamResponse:
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        for word in words:
            await out.write(_event(_chunk(body, {"content": word})))
        await out.write(_event(_chunk(body, {}, finish="stop")))
        if (body.get("stream_options") or {}).get("include_usage"):
            final = _envelope("chat.completion.chunk", body, []) | {
                "usage": _usage(prompt, len(words))
            }
            await out.write(_event(final))
        await out.write(b"data: [DONE]\n\n")
        await out.write_eof()
        return out


def _envelope(kind: str, body: dict[str, Any], choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": "demo-" + str(time.time_ns()),
        "object": kind,
        "created": int(time.time()),
        "model": str(body.get("model", "demo")),
        "choices": choices,
    }


def _chunk(
    body: dict[str, Any], delta: dict[str, Any], finish: str | None = None
) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return _envelope("chat.completion.chunk", body, [choice])


def _event(chunk: dict[str, Any]) -> bytes:
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
