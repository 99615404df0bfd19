"""An OpenAI-compatible stand-in for an LLM provider, for tests and the dev stack.

Deterministic: usage is computed from the request (or given in a `mock` object in the body),
so costs can be asserted exactly. Behaviour is chosen by the model name:

    *fail500*   -> HTTP 500            *fail429*  -> HTTP 429          *badjson* -> not JSON
    *nousage*   -> no usage anywhere   *hang*     -> answers after 3 s *cut*     -> stream breaks
    *slow*      -> stream pauses `mock.pause_s` (default 2 s) after its first chunk
    *stall*     -> stream headers at once, then `mock.pause_s` before the first chunk

A behaviour followed by `@<name>` (`test-fail500@a`) applies only on the mock of that name, so
one model can fail on one upstream and answer on another. `down = True` makes every call
(GET /models too) a 503. A chat whose `tool_choice` names a function calls it (arguments from
`mock.arguments`); the legacy `functions` field is refused, as current providers do. `mock`
fields: prompt_tokens, completion_tokens, pause_s; and `report_usage`
(any JSON), sent as the `usage` of chat answers instead of the true one; `merge`
(an object) laid over a plain chat, completion or responses answer; `pad_bytes`, a padding
field that size added to a plain chat or completion answer; `extra_chunk` (an object) sent
as one more event after a stream's first chunk; `images`, how many images to answer with whatever
`n` asked; and the form field `mock_seconds`, the seconds a transcription reports. Every POST
received is recorded (path, headers, JSON body or form fields) in `received`. Plain chat and
completion answers set a cookie, as providers behind a CDN do.

Endpoints: chat/completions, completions, responses (plain and SSE), embeddings,
images/generations (per image), audio/transcriptions and audio/translations (WAV; usage in
seconds, or in tokens for models named *tokens*), GET /models (the ids in `listed`, with
the fields `about` gives each).
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import secrets
import struct
import time
from collections.abc import MutableSequence
from typing import Any

from aiohttp import web

WORD = "tok "
BODY = web.RequestKey[dict[str, Any]]("mock_body")
FAILURES = ("fail500", "fail429", "badjson")


class MockUpstream:
    def __init__(self, name: str = "a", listed: list[str] | None = None) -> None:
        self.name = name
        self.listed = list(listed if listed is not None else ["mock-model"])
        self.down = False
        self.about: dict[str, dict[str, Any]] = {}  # more fields of a listed model, by id
        self.received: MutableSequence[dict[str, Any]] = []  # the benches keep a deque
        self.app = web.Application(middlewares=[self._gate])
        self.app.add_routes(
            [
                web.post("/v1/chat/completions", self.chat),
                web.post("/v1/completions", self.completions),
                web.post("/v1/responses", self.responses),
                web.post("/v1/embeddings", self.embeddings),
                web.post("/v1/images/generations", self.images),
                web.post("/v1/audio/transcriptions", self.transcriptions),
                web.post("/v1/audio/translations", self.transcriptions),
                web.get("/v1/models", self.models),
            ]
        )

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.down:
            return web.json_response({"error": {"message": "down"}}, status=503)
        if request.method == "POST" and request.content_type == "application/json":
            body = await request.json()
            self.received.append(
                {"path": request.path, "headers": dict(request.headers), "body": body}
            )
            request[BODY] = body
            model = str(body.get("model", ""))
            if self._has(model, "hang"):
                await asyncio.sleep(3)  # longer than the impatient upstream waits
            failure = self._failure(model)
            if failure is not None:
                return failure
        result: web.StreamResponse = await handler(request)
        return result

    def _has(self, model: str, behaviour: str) -> bool:
        """`behaviour` is in the name, and any `@name` after it names this mock."""
        at = model.find(behaviour)
        if at < 0:
            return False
        rest = model[at + len(behaviour) :]
        return not rest.startswith("@") or rest[1:].split("-")[0] == self.name

    def _failure(self, model: str) -> web.Response | None:
        if self._has(model, "fail500"):
            return web.json_response({"error": {"message": "boom"}}, status=500)
        if self._has(model, "fail429"):
            return web.json_response(
                {"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "2"}
            )
        if self._has(model, "badjson"):
            return web.Response(text="<html>oops</html>", content_type="text/html")
        return None

    async def models(self, request: web.Request) -> web.Response:
        data = [
            {"id": m, "object": "model", "owned_by": self.name, **self.about.get(m, {})}
            for m in self.listed
        ]
        return web.json_response({"object": "list", "data": data})

    # --- chat and completions ------------------------------------------------------------

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = request[BODY]
        model = str(body.get("model", ""))
        prompt, completion = usage_for(body)
        if "functions" in body:  # as current providers: the legacy format is gone
            return web.json_response({"error": {"message": "use tools"}}, status=400)
        call = _tool_call(body)
        if body.get("stream"):
            return await self._stream(request, body, prompt, completion, call)
        message: dict[str, Any] = {"role": "assistant", "content": WORD * completion}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        if call is not None:
            message.update(content=None, tool_calls=[call])
            choice["finish_reason"] = "tool_calls"
        return self._answer(model, "chat.completion", choice, prompt, completion, body)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = request[BODY]
        prompt, completion = usage_for(body)
        choice = {"index": 0, "text": WORD * completion, "finish_reason": "stop", "logprobs": None}
        model = str(body["model"])
        return self._answer(model, "text_completion", choice, prompt, completion, body)

    def _answer(
        self,
        model: str,
        kind: str,
        choice: dict[str, Any],
        prompt: int,
        completion: int,
        body: dict[str, Any],
    ) -> web.Response:
        answer: dict[str, Any] = {
            "id": "chatcmpl-mock",
            "object": kind,
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": self.name,
            "choices": [choice],
        }
        if "nousage" not in model:
            answer["usage"] = _reported(body, prompt, completion)
        answer.update(_mock(body).get("merge") or {})
        if "pad_bytes" in _mock(body):  # an answer as large as n=64 with logprobs makes it
            answer["padding"] = "x" * int(_mock(body)["pad_bytes"])
        response = web.json_response(answer)
        response.set_cookie("__cf_bm", f"mock-{self.name}")  # as a real provider's CDN does
        return response

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        prompt: int,
        completion: int,
        call: dict[str, Any] | None = None,
    ) -> web.StreamResponse:
        model = str(body["model"])
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        pause = float(_mock(body).get("pause_s", 2.0))
        if self._has(model, "stall"):
            await asyncio.sleep(pause)
        for i in range(completion):
            await out.write(_event(_chunk(model, {"content": WORD})))
            if i == 0 and "extra_chunk" in _mock(body):
                await out.write(_event(_mock(body)["extra_chunk"]))
            if i == 0 and self._has(model, "slow"):
                await asyncio.sleep(pause)
            if i == completion // 2 and self._has(model, "cut"):
                assert request.transport is not None
                request.transport.close()
                return out
        if call is not None:
            start = {**call, "index": 0, "function": {"name": call["function"]["name"],
                                                      "arguments": ""}}  # fmt: skip
            await out.write(_event(_chunk(model, {"tool_calls": [start]})))
            rest = {"index": 0, "function": {"arguments": call["function"]["arguments"]}}
            await out.write(_event(_chunk(model, {"tool_calls": [rest]})))
        finish = "stop" if call is None else "tool_calls"
        await out.write(_event(_chunk(model, {}, finish=finish)))
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

    # --- responses -------------------------------------------------------------------------

    async def responses(self, request: web.Request) -> web.StreamResponse:
        body = request[BODY]
        model = str(body["model"])
        prompt, completion = usage_for(body)
        text = WORD * completion
        rid = secrets.token_hex(8)  # ids of its own, as an upstream's stored responses have
        usage = {
            "input_tokens": prompt,
            "output_tokens": completion,
            "total_tokens": prompt + completion,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        }
        if not body.get("stream"):
            answer = _response(rid, model, text, usage, "completed")
            answer.update(_mock(body).get("merge") or {})
            return web.json_response(answer)
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        created = _response(rid, model, "", None, "in_progress")
        start = {"type": "response.created", "response": created}
        await out.write(_named(start, 0))
        for i in range(completion):
            delta = {"type": "response.output_text.delta", "item_id": f"msg_{rid}",
                     "output_index": 0, "content_index": 0, "delta": WORD}  # fmt: skip
            await out.write(_named(delta, i + 1))
        done = {
            "type": "response.completed",
            "response": _response(rid, model, text, usage, "completed"),
        }
        await out.write(_named(done, completion + 1))
        await out.write_eof()
        return out

    # --- embeddings, images, audio -------------------------------------------------------------

    async def embeddings(self, request: web.Request) -> web.Response:
        body = request[BODY]
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        mock = _mock(body)
        prompt = int(mock.get("prompt_tokens", math.ceil(len(json.dumps(inputs)) / 4)))
        vector = [0.25, -0.5, 0.75]
        data = []
        for i, _ in enumerate(inputs):
            embedding: Any = vector
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack("<3f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        usage = {"prompt_tokens": prompt, "total_tokens": prompt}
        return web.json_response(
            {"object": "list", "data": data, "model": body["model"], "usage": usage}
        )

    async def images(self, request: web.Request) -> web.Response:
        body = request[BODY]
        pixel = base64.b64encode(b"\x89PNG mock image").decode()
        count = int(_mock(body).get("images", body.get("n", 1)))
        data = [{"b64_json": pixel} for _ in range(count)]
        return web.json_response({"created": int(time.time()), "data": data})

    async def transcriptions(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        upload = form["file"]
        assert isinstance(upload, web.FileField)
        audio = upload.file.read()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        fields["file"] = f"{upload.filename} ({len(audio)} bytes)"
        self.received.append(
            {"path": request.path, "headers": dict(request.headers), "body": fields}
        )
        failure = self._failure(fields.get("model", ""))
        if failure is not None:
            return failure
        seconds = _duration(audio)
        text = "hello from the mock transcription"
        if request.path.endswith("/translations"):
            text = "hello from the mock translation"
        if fields.get("response_format") == "text":
            return web.Response(text=text, content_type="text/plain")
        reported = float(fields["mock_seconds"]) if "mock_seconds" in fields else math.ceil(seconds)
        usage: dict[str, Any] = {"type": "duration", "seconds": reported}
        if "tokens" in fields.get("model", ""):
            audio_tokens, words = int(seconds * 10), len(text.split())
            usage = {"type": "tokens", "input_tokens": audio_tokens, "output_tokens": words,
                     "total_tokens": audio_tokens + words}  # fmt: skip
        return web.json_response({"text": text, "usage": usage})


def _duration(audio: bytes) -> float:
    """A WAV clip's real length, as a PCM decoder reads it: the data chunk's bytes over sample
    rate x channels x bytes per sample (the byte rate and block align fields play no part)."""
    channels, rate = struct.unpack_from("<HI", audio, 22)
    bits = struct.unpack_from("<H", audio, 34)[0]
    size: int = struct.unpack_from("<I", audio, audio.index(b"data") + 4)[0]
    per_second: int = rate * channels * bits // 8
    return size / per_second


def _tool_call(body: dict[str, Any]) -> dict[str, Any] | None:
    """The call a `tool_choice` naming a function forces (arguments from `mock.arguments`)."""
    choice = body.get("tool_choice")
    if not body.get("tools") or not isinstance(choice, dict):
        return None
    name = str(choice.get("function", {}).get("name", ""))
    arguments = str(_mock(body).get("arguments", "{}"))
    return {
        "id": "call_mock",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def usage_for(body: dict[str, Any]) -> tuple[int, int]:
    mock = _mock(body)
    given = body.get("messages") or body.get("input") or body.get("prompt") or ""
    if isinstance(given, list):
        text = "".join(str(m.get("content", "")) if isinstance(m, dict) else str(m) for m in given)
    else:
        text = str(given)
    prompt = int(mock.get("prompt_tokens", math.ceil(len(text) / 4)))
    limit = (
        body.get("max_completion_tokens")
        or body.get("max_tokens")
        or body.get("max_output_tokens")
        or 10
    )
    completion = int(mock.get("completion_tokens", min(10, limit)))
    return prompt, completion


def _mock(body: dict[str, Any]) -> dict[str, Any]:
    """The request's `mock` object: what a test asks of this upstream."""
    mock = body.get("mock")
    return mock if isinstance(mock, dict) else {}


def _reported(body: dict[str, Any], prompt: int, completion: int) -> Any:
    mock = _mock(body)
    return mock["report_usage"] if "report_usage" in mock else _usage(prompt, completion)


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _response(
    rid: str, model: str, text: str, usage: dict[str, Any] | None, status: str
) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": []}]
    output = [{"type": "message", "id": f"msg_{rid}", "status": status, "role": "assistant",
               "content": content}] if text else []  # fmt: skip
    return {
        "id": f"resp_{rid}",
        "object": "response",
        "created_at": int(time.time()),
        "model": model,
        "status": status,
        "output": output,
        "usage": usage,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "metadata": {},
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "temperature": 1.0,
        "top_p": 1.0,
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


def _named(event: dict[str, Any], sequence: int) -> bytes:
    event = event | {"sequence_number": sequence}
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
