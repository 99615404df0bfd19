"""An upstream that bills the way OpenAI and vLLM document, and writes down every bill.

The stand-in for "what the provider will invoice the operator", so tests can assert that the
node never charged a client less than the upstream billed for that client's request:

    prompt       a pessimistic tokenizer: a token per 1-4 ASCII letters, a token per byte of
                 everything else (digits, punctuation, spaces, any non-ASCII), plus OpenAI's
                 per-message overhead (4) and reply priming (3); tools, functions and
                 response formats are billed as their JSON text; a BOS token per completion
                 prompt and per embedding input
    images       detail low: 85 tokens; high/auto: 85 + 170 per 512-px tile, the tiles taken
                 from a `tiles=N` in the image URL (else 8, the most a 2048x768 image has),
                 times the model's multiplier (`image_multipliers`, as gpt-4o-mini's ~33x)
    files        FILE_TOKENS a file part (its text and page images)
    stored ids   previous_response_id re-bills the input and output of that response
    answers      one completion per prompt x n (x best_of when larger), each as long as the
                 output limit sent (the upstream may always write up to it)
    context      a prompt past the model's context (vLLM: prompt + max_tokens) is a 400, unbilled
    extras       priority service tier 2x, audio out 8x, audio in 16x, rejected prediction tokens,
                 per-call web search fees, background answers billed without usage

`bills` holds one Bill per request the upstream accepted, in order; `bill_msat` prices one at
a model's price the way the node's contract does.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import re
import time
import wave
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp import web

WORD = "tok "
FILE_TOKENS = 3000
DEFAULT_CONTEXT = 128_000
LETTERS = re.compile(r"[A-Za-z]{1,4}")
SEARCH_CALL_USD = Fraction(25, 1000)  # OpenAI: $25 per 1000 web search calls
IMAGE_PARTS = {"image_url", "input_image"}
FILE_PARTS = {"file", "input_file"}
AUDIO_PARTS = {"input_audio"}


@dataclass
class Bill:
    path: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    factor: Fraction = Fraction(1)  # a service tier or modality billed above the token price
    completion_factor: Fraction = Fraction(1)
    calls_usd: Fraction = Fraction(0)  # per-call fees (web search)
    images: int = 0
    seconds: int = 0  # of audio transcribed, billed by the (whole) second
    sent: dict[str, Any] = field(default_factory=dict, repr=False)  # the request, as received


def tokens(text: str) -> int:
    """Pessimistic: never fewer than a real BPE would count, never more than the UTF-8 bytes."""
    words = LETTERS.findall(text)
    return len(words) + len(LETTERS.sub("", text).encode())


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Refused(Exception):
    """The upstream refuses the request (a 400), before billing anything."""


class BillingUpstream:
    def __init__(
        self,
        contexts: dict[str, int] | None = None,
        image_multipliers: dict[str, float] | None = None,
    ) -> None:
        self.contexts = dict(contexts or {})
        self.image_multipliers = dict(image_multipliers or {})
        self.bills: list[Bill] = []
        self.stored: dict[str, int] = {}  # response id -> tokens it re-bills when referenced
        self._ids = itertools.count(1)
        self.app = web.Application()
        self.app.add_routes(
            [
                web.post("/v1/chat/completions", self.chat),
                web.post("/v1/completions", self.completions),
                web.post("/v1/responses", self.responses),
                web.post("/v1/embeddings", self.embeddings),
                web.post("/v1/images/generations", self.images),
                web.post("/v1/audio/transcriptions", self.transcriptions),
                web.get("/v1/models", self.models),
            ]
        )

    def context(self, model: str) -> int:
        return self.contexts.get(model, DEFAULT_CONTEXT)

    # --- what a prompt costs ----------------------------------------------------------------

    def content(self, value: Any, model: str, bill: Bill) -> int:
        """Tokens of a message's content, or of any part of a request carrying text."""
        if isinstance(value, str):
            return tokens(value)
        if isinstance(value, list):
            return sum(self.content(v, model, bill) for v in value)
        if not isinstance(value, dict):
            return tokens(dumps(value)) if value is not None else 0
        kind = value.get("type")
        if kind in IMAGE_PARTS:
            return self.image(value, model)
        if kind in FILE_PARTS:
            return FILE_TOKENS
        if kind in AUDIO_PARTS:
            bill.factor = max(bill.factor, Fraction(16))  # audio in: $40/M against $2.50/M
            data = (value.get("input_audio") or {}).get("data", "")
            return max(1, len(str(data)) // 4)
        return sum(self.content(v, model, bill) for v in value.values())

    def image(self, part: dict[str, Any], model: str) -> int:
        inner = part.get("image_url")
        url = inner.get("url", "") if isinstance(inner, dict) else inner or ""
        detail = (inner.get("detail") if isinstance(inner, dict) else None) or part.get("detail")
        if detail == "low":
            base = 85
        else:
            tiles = parse_qs(urlsplit(str(url)).query).get("tiles", ["8"])[0]
            base = 85 + 170 * int(tiles)
        return math.ceil(base * self.image_multipliers.get(model, 1.0))

    def messages(self, messages: list[Any], model: str, bill: Bill) -> int:
        total = 3  # every reply is primed with <|start|>assistant<|message|>
        for message in messages:
            total += 4 + self.content(message, model, bill)
        return total

    def extras(self, body: dict[str, Any], model: str, bill: Bill) -> int:
        """Tools, functions and formats, billed as their JSON; and the billed modifiers."""
        total = 0
        for name in ("tools", "functions", "response_format", "text"):
            if body.get(name):
                total += 10 + tokens(dumps(body[name]))
        if body.get("service_tier") in ("priority", "scale"):
            bill.factor *= 2
        if "audio" in (body.get("modalities") or []) or body.get("audio"):
            bill.completion_factor = Fraction(8)
        prediction = body.get("prediction")
        if isinstance(prediction, dict):  # rejected prediction tokens are billed as output
            bill.completion_tokens += self.content(prediction.get("content"), model, bill)
        searches = [t for t in body.get("tools") or [] if "search" in str(t.get("type"))]
        if searches or body.get("web_search_options") is not None:
            bill.calls_usd += SEARCH_CALL_USD
            total += 2000  # the search results read into the prompt
        elif "search" in model:  # search models: the results' tokens come with the call's fee
            bill.calls_usd += SEARCH_CALL_USD
        return total

    def check_context(self, model: str, prompt: int, output: int = 0) -> None:
        if prompt + output > self.context(model):
            raise Refused(
                f"This model's maximum context length is {self.context(model)} tokens. "
                f"However, you requested {prompt + output} tokens."
            )

    # --- endpoints ---------------------------------------------------------------------------

    async def _accept(self, request: web.Request) -> tuple[dict[str, Any], Bill]:
        body = await request.json()
        path = request.path.removeprefix("/v1/")
        return body, Bill(path, str(body.get("model", "")), sent=body)

    @staticmethod
    def _refused(exc: Refused) -> web.Response:
        error = {"message": str(exc), "type": "invalid_request_error", "code": "context_length"}
        return web.json_response({"error": error}, status=400)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body, bill = await self._accept(request)
        try:
            prompt = self.messages(body.get("messages") or [], bill.model, bill)
            prompt += self.extras(body, bill.model, bill)
            self.check_context(bill.model, prompt)
        except Refused as exc:
            return self._refused(exc)
        limit = _limit(body, "max_completion_tokens", "max_tokens")
        return await self._answer(request, body, bill, prompt, [limit] * _n(body))

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body, bill = await self._accept(request)
        limit = _limit(body, "max_tokens", default=16)
        prompts = _prompts(body.get("prompt"))
        suffix = tokens(body["suffix"]) if isinstance(body.get("suffix"), str) else 0
        try:
            counts = [p + suffix for p in prompts]
            for count in counts:  # vLLM: each prompt and its answer must fit the context
                self.check_context(bill.model, count, limit)
        except Refused as exc:
            return self._refused(exc)
        each = max(_n(body), _n(body, "best_of"))
        return await self._answer(request, body, bill, sum(counts), [limit] * each * len(prompts))

    async def responses(self, request: web.Request) -> web.StreamResponse:
        body, bill = await self._accept(request)
        given = body.get("input")
        items = [{"role": "user", "content": given}] if isinstance(given, str) else given or []
        prompt = self.messages(items, bill.model, bill) + self.extras(body, bill.model, bill)
        prompt += tokens(body["instructions"]) if isinstance(body.get("instructions"), str) else 0
        prompt += self.stored.get(str(body.get("previous_response_id")), 0)
        try:
            self.check_context(bill.model, prompt)
        except Refused as exc:
            return self._refused(exc)
        limit = _limit(body, "max_output_tokens")
        return await self._answer(request, body, bill, prompt, [limit] * _n(body))

    async def embeddings(self, request: web.Request) -> web.Response:
        body, bill = await self._accept(request)
        inputs = _prompts(body.get("input"))
        try:
            for count in inputs:
                self.check_context(bill.model, count)
        except Refused as exc:
            return self._refused(exc)
        bill.prompt_tokens = sum(inputs)
        self.bills.append(bill)
        data = [{"object": "embedding", "index": i, "embedding": [0.5]} for i in range(len(inputs))]
        usage = {"prompt_tokens": bill.prompt_tokens, "total_tokens": bill.prompt_tokens}
        return web.json_response({"object": "list", "data": data, "usage": usage})

    async def images(self, request: web.Request) -> web.Response:
        body, bill = await self._accept(request)
        bill.images = int(body.get("n") or 1)
        self.bills.append(bill)
        data = [{"b64_json": "aW1hZ2U="} for _ in range(bill.images)]
        return web.json_response({"created": int(time.time()), "data": data})

    async def transcriptions(self, request: web.Request) -> web.Response:
        """Per second of audio (minute-priced models), or per token: 10 a second of audio, and
        the `prompt` field's text (gpt-4o-transcribe's way)."""
        form = await request.post()
        upload = form["file"]
        assert isinstance(upload, web.FileField)
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        bill = Bill("audio/transcriptions", fields.get("model", ""), sent=fields)
        with wave.open(io.BytesIO(upload.file.read())) as clip:
            seconds = clip.getnframes() / clip.getframerate()
        text = "hello from the billing mock"
        if "transcribe" in bill.model:
            bill.prompt_tokens = math.ceil(seconds * 10) + tokens(fields.get("prompt", ""))
            bill.completion_tokens = tokens(text)
            usage: dict[str, Any] = {"type": "tokens", "input_tokens": bill.prompt_tokens,
                                     "output_tokens": bill.completion_tokens}  # fmt: skip
        else:
            bill.seconds = math.ceil(seconds)
            usage = {"type": "duration", "seconds": bill.seconds}
        self.bills.append(bill)
        return web.json_response({"text": text, "usage": usage})

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": []})

    # --- answering -----------------------------------------------------------------------------

    async def _answer(
        self,
        request: web.Request,
        body: dict[str, Any],
        bill: Bill,
        prompt: int,
        limits: list[int],
    ) -> web.StreamResponse:
        bill.prompt_tokens = prompt
        bill.completion_tokens += sum(limits)
        self.bills.append(bill)
        completion = bill.completion_tokens
        if bill.path == "responses":
            answer_id = f"resp_{next(self._ids)}"
            self.stored[answer_id] = prompt + completion
            if body.get("background"):  # answered now, written (and billed) later
                return web.json_response(_response(answer_id, body, "", None, "queued"))
            usage = {"input_tokens": prompt, "output_tokens": completion,
                     "total_tokens": prompt + completion}  # fmt: skip
            text = WORD * completion
            if body.get("stream"):
                return await _stream_response(request, answer_id, body, text, usage)
            return web.json_response(_response(answer_id, body, text, usage, "completed"))
        usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                 "total_tokens": prompt + completion}  # fmt: skip
        key = "message" if bill.path == "chat/completions" else "text"
        if body.get("stream"):
            return await _stream_choices(request, body, key, limits, usage)
        choices = [_choice(i, key, WORD * n) for i, n in enumerate(limits)]
        kind = "chat.completion" if key == "message" else "text_completion"
        answer = {"id": "cmpl-bill", "object": kind, "created": int(time.time()),
                  "model": body.get("model"), "choices": choices, "usage": usage}  # fmt: skip
        return web.json_response(answer)


def bill_msat(
    bill: Bill,
    input_usd_per_mtok: Fraction | float,
    output_usd_per_mtok: Fraction | float,
    btc_usd: int = 100_000,
    image_usd: Fraction | float = 0,
    audio_minute_usd: Fraction | float = 0,
) -> int:
    """What the bill costs in msat at a model's price, as the contract's cost formula does."""
    usd = (
        (
            bill.prompt_tokens * Fraction(input_usd_per_mtok) / 10**6
            + bill.completion_tokens
            * Fraction(output_usd_per_mtok)
            / 10**6
            * bill.completion_factor
        )
        * bill.factor
        + bill.calls_usd
        + bill.images * Fraction(image_usd)
    )
    return math.ceil(usd * 10**11 / btc_usd)


def _limit(body: dict[str, Any], *fields: str, default: int = 4096) -> int:
    for name in fields:
        if isinstance(body.get(name), int):
            return int(body[name])
    return default


def _n(body: dict[str, Any], field: str = "n") -> int:
    value = body.get(field)
    return value if isinstance(value, int) and value > 0 else 1


def _prompts(given: Any) -> list[int]:
    """Tokens of each prompt: a string, token ids, or a list of either (vLLM adds a BOS)."""
    if isinstance(given, str):
        return [tokens(given) + 1]
    if not isinstance(given, list) or not given:
        return [1]
    if all(isinstance(x, int) for x in given):
        return [len(given) + 1]
    return [_one_prompt(p) for p in given]


def _one_prompt(given: Any) -> int:
    if isinstance(given, str):
        return tokens(given) + 1
    if isinstance(given, dict):  # a multimodal input: an image (a high-detail one's tokens)
        return 85 + 170 * 8 if given.get("image_url") else tokens(dumps(given)) + 1
    return len(given) + 1


def _choice(index: int, key: str, text: str) -> dict[str, Any]:
    if key == "message":
        return {"index": index, "message": {"role": "assistant", "content": text},
                "finish_reason": "length"}  # fmt: skip
    return {"index": index, "text": text, "finish_reason": "length", "logprobs": None}


def _response(
    answer_id: str, body: dict[str, Any], text: str, usage: dict[str, Any] | None, status: str
) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": []}]
    output = [{"type": "message", "id": "msg_1", "status": status, "role": "assistant",
               "content": content}] if text else []  # fmt: skip
    return {"id": answer_id, "object": "response", "created_at": int(time.time()),
            "model": body.get("model"), "status": status, "output": output,
            "usage": usage}  # fmt: skip


async def _stream_choices(
    request: web.Request, body: dict[str, Any], key: str, limits: list[int], usage: dict[str, Any]
) -> web.StreamResponse:
    out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await out.prepare(request)
    kind = "chat.completion.chunk" if key == "message" else "text_completion"
    for index, n in enumerate(limits):
        part = {"delta": {"content": WORD * n}} if key == "message" else {"text": WORD * n}
        choice = {"index": index, **part, "finish_reason": "length"}
        await out.write(_event({"object": kind, "model": body.get("model"), "choices": [choice]}))
    if (body.get("stream_options") or {}).get("include_usage"):
        await out.write(_event({"object": kind, "choices": [], "usage": usage}))
    await out.write(b"data: [DONE]\n\n")
    await out.write_eof()
    return out


async def _stream_response(
    request: web.Request, answer_id: str, body: dict[str, Any], text: str, usage: dict[str, Any]
) -> web.StreamResponse:
    out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await out.prepare(request)
    delta = {"type": "response.output_text.delta", "output_index": 0, "delta": text}
    done = {"type": "response.completed",
            "response": _response(answer_id, body, text, usage, "completed")}  # fmt: skip
    for event in (delta, done):
        await out.write(f"event: {event['type']}\n".encode() + _event(event))
    await out.write_eof()
    return out


def _event(chunk: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(chunk)}\n\n".encode()
