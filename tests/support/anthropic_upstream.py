"""An Anthropic Messages API stand-in, for tests and the dev stack (a server, like mock_upstream).

Endpoints: POST /v1/messages (plain and streamed), POST /v1/messages/count_tokens, GET /v1/models
(Anthropic's list shape). Every call needs the key, as `x-api-key` or as `Authorization: Bearer`
(the anthropic SDK 2.x sends its api_key so; 401 authentication_error otherwise) and
`anthropic-version` (400 invalid_request_error); extended thinking's `budget_tokens` must be
below `max_tokens` but with the interleaved-thinking beta and tools, as Anthropic documents
(400). Errors use Anthropic's envelope `{"type": "error", "error": {"type", "message"}}` and a
`request-id` header. Every request is recorded (path, query, headers with lower-case names,
JSON body) in `received`.

Deterministic, so costs can be asserted exactly. Usage: input_tokens = ceil(len(JSON of system,
messages and tools) / 4), output_tokens = min(10, max_tokens), no cache; each settable, with
cache_creation_input_tokens and cache_read_input_tokens, in a `mock` object in the body or, for
requests that pass through a translation (which drops unknown fields), in
`metadata.user_id = "mock:output_tokens=3,cache_read_input_tokens=100"`. Other settings:
pause_s (for *slow*), stop_sequence=1 (stop on the request's first stop sequence), tool_input
(an object: the tool call's input), full_delta_usage=1 (message_delta repeats all four counts;
by default it carries output_tokens alone, as the classic stream does).

The answer: a thinking block when `thinking` is enabled or adaptive; then text (`tok ` per
output token), or, when tools are offered and the last user turn holds no tool_result (always
for tool_choice any/tool, never for none), one word of text and a tool_use of the chosen (or
first) tool, its input made from the schema, streamed as input_json_delta in 5-character pieces.
Streams follow the documented order: message_start, content blocks (start, deltas, stop) with a
`ping` after the first start, message_delta, message_stop.

Behaviour by model name (`…@<name>` limits it to the mock of that name, as mock_upstream does):
    *fail500*  -> 500 api_error        *overloaded* -> 529 overloaded_error
    *fail429*  -> 429 rate_limit_error *notfound*   -> 404 not_found_error
    *nousage*  -> no usage anywhere    *hang*       -> answers after 3 s
    *cut*      -> stream breaks half way through its events
    *slow*     -> stream pauses pause_s (default 2 s) after its first delta
    *midstream* -> an `error` event (overloaded_error) after the first delta, and nothing more
    *openerror* -> a stream that opens with an `error` event (overloaded_error), before any
                   message_start, and nothing more (Anthropic's "error events" in a stream;
                   Anthropic bills nothing for it); a plain request is answered as usual
Names combine: `claude-slow-cut` pauses after its first delta, then breaks half way through.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections.abc import MutableSequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

API_KEY = "sk-ant-mock"
WORD = "tok "
BODY = web.RequestKey[dict[str, Any]]("anthropic_body")
FAILURES = {
    "fail500": (500, "api_error", "Internal server error"),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "fail429": (429, "rate_limit_error", "Number of request tokens has exceeded your rate limit"),
    "notfound": (404, "not_found_error", "model: not found"),
}
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
_ids = itertools.count(1)


def error_response(status: int, kind: str, message: str, **headers: str) -> web.Response:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return web.json_response(body, status=status, headers={"request-id": _request_id(), **headers})


def _request_id() -> str:
    return f"req_mock_{next(_ids)}"


@dataclass
class Plan:
    """What one request is answered with."""

    model: str
    thinking: bool
    text: list[str]
    tool: dict[str, Any] | None
    stop_reason: str
    stop_sequence: str | None
    usage: dict[str, int] | None
    settings: dict[str, Any] = field(default_factory=dict)


class MockAnthropic:
    def __init__(
        self, name: str = "anthropic", listed: list[str] | None = None, api_key: str = API_KEY
    ) -> None:
        self.name = name
        self.listed = list(listed if listed is not None else ["claude-mock"])
        self.api_key = api_key
        self.down = False
        self.received: MutableSequence[dict[str, Any]] = []  # the benches keep a deque
        self.app = web.Application(middlewares=[self._gate])
        self.app.add_routes(
            [
                web.post("/v1/messages", self.messages),
                web.post("/v1/messages/count_tokens", self.count_tokens),
                web.get("/v1/models", self.models),
            ]
        )

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.down:
            return error_response(503, "api_error", "down")
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.api_key not in (request.headers.get("x-api-key"), bearer):
            return error_response(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return error_response(400, "invalid_request_error", "anthropic-version: required")
        if request.method == "POST":
            try:
                body = await request.json()
            except ValueError:
                return error_response(400, "invalid_request_error", "the body is not JSON")
            headers = {name.lower(): value for name, value in request.headers.items()}
            self.received.append({"path": request.path, "query": dict(request.query),
                                  "headers": headers, "body": body})  # fmt: skip
            if not isinstance(body, dict):
                return error_response(400, "invalid_request_error", "the body is not an object")
            request[BODY] = body
            failure = await self._failure(str(body.get("model", "")))
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

    async def _failure(self, model: str) -> web.Response | None:
        if self._has(model, "hang"):
            await asyncio.sleep(3)
        for behaviour, (status, kind, message) in FAILURES.items():
            if self._has(model, behaviour):
                extra = {"retry-after": "2"} if status == 429 else {}
                return error_response(status, kind, message, **extra)
        return None

    # --- endpoints -----------------------------------------------------------------------

    async def models(self, request: web.Request) -> web.Response:
        data = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z",
                 "lifecycle": "active"} for m in self.listed]  # fmt: skip
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        page = {"data": data, "has_more": False, "first_id": first, "last_id": last}
        return web.json_response(page, headers={"request-id": _request_id()})

    async def count_tokens(self, request: web.Request) -> web.Response:
        body = request[BODY]
        problem = _invalid(body, needs_max_tokens=False)
        if problem:
            return error_response(400, "invalid_request_error", problem)
        usage = _usage(body, _settings(body))
        total = usage["input_tokens"] + usage["cache_creation_input_tokens"]
        total += usage["cache_read_input_tokens"]
        return web.json_response({"input_tokens": total}, headers={"request-id": _request_id()})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = request[BODY]
        problem = _invalid(body, needs_max_tokens=True) or _over_budget(body, request.headers)
        if problem:
            return error_response(400, "invalid_request_error", problem)
        plan = self._plan(body)
        if body.get("stream") is True:
            return await self._stream(request, plan)
        answer = message_start(plan)["message"] | {
            "content": [block for block, _ in blocks(plan)],
            "stop_reason": plan.stop_reason,
            "stop_sequence": plan.stop_sequence,
        }
        if plan.usage is None:
            del answer["usage"]
        return web.json_response(answer, headers={"request-id": _request_id()})

    async def _stream(self, request: web.Request, plan: Plan) -> web.StreamResponse:
        out = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "request-id": _request_id()}
        )
        await out.prepare(request)
        if self._has(plan.model, "openerror"):
            await out.write(encode(OVERLOADED))
            await out.write_eof()
            return out
        events = stream_events(plan)
        first_delta = next(i for i, e in enumerate(events) if e["type"] == "content_block_delta")
        for i, event in enumerate(events):
            await out.write(encode(event))
            if i == first_delta and self._has(plan.model, "midstream"):
                await out.write(encode(OVERLOADED))
                break
            if i == first_delta and self._has(plan.model, "slow"):
                await asyncio.sleep(float(plan.settings.get("pause_s", 2.0)))
            if i == len(events) // 2 and self._has(plan.model, "cut"):
                assert request.transport is not None
                request.transport.close()
                return out
        await out.write_eof()
        return out

    def _plan(self, body: dict[str, Any]) -> Plan:
        settings = _settings(body)
        model = str(body["model"])
        usage = None if self._has(model, "nousage") else _usage(body, settings)
        output = int(settings.get("output_tokens", min(10, int(body["max_tokens"]))))
        tool = _tool_call(body, settings)
        stop_reason, stop_sequence = "end_turn", None
        stops = body.get("stop_sequences") or []
        if tool is not None:
            stop_reason = "tool_use"
        elif settings.get("stop_sequence") and stops:
            stop_reason, stop_sequence = "stop_sequence", str(stops[0])
        elif output >= int(body["max_tokens"]):
            stop_reason = "max_tokens"
        thinking = isinstance(body.get("thinking"), dict) and body["thinking"].get("type") in (
            "enabled", "adaptive")  # fmt: skip
        text = [WORD] if tool is not None else [WORD] * output
        if usage is not None:
            usage["output_tokens"] = output
        return Plan(model, thinking, text, tool, stop_reason, stop_sequence, usage, settings)


# --- the answer, as events ---------------------------------------------------------------


def message_start(plan: Plan, streaming: bool = False) -> dict[str, Any]:
    """The message as a stream starts it (output_tokens 1, as Anthropic shows), or whole."""
    message: dict[str, Any] = {
        "id": f"msg_mock_{next(_ids)}",
        "type": "message",
        "role": "assistant",
        "model": plan.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }
    if plan.usage is not None:
        message["usage"] = plan.usage | ({"output_tokens": 1} if streaming else {})
    return {"type": "message_start", "message": message}


def blocks(plan: Plan) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Each content block whole, with the deltas that stream it."""
    out: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    if plan.thinking:
        pieces = ["Let me think", " about this."]
        whole = {"type": "thinking", "thinking": "".join(pieces), "signature": "sig-mock"}
        deltas = [{"type": "thinking_delta", "thinking": p} for p in pieces]
        out.append((whole, [*deltas, {"type": "signature_delta", "signature": "sig-mock"}]))
    text = {"type": "text", "text": "".join(plan.text)}
    out.append((text, [{"type": "text_delta", "text": piece} for piece in plan.text]))
    if plan.tool is not None:
        arguments = json.dumps(plan.tool["input"])
        pieces = [arguments[i : i + 5] for i in range(0, len(arguments), 5)]
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in ["", *pieces]]
        out.append((plan.tool, deltas))
    return out


def stream_events(plan: Plan) -> list[dict[str, Any]]:
    events = [message_start(plan, streaming=True)]
    for index, (whole, deltas) in enumerate(blocks(plan)):
        empty = {"text": {"type": "text", "text": ""},
                 "thinking": {"type": "thinking", "thinking": "", "signature": ""},
                 "tool_use": whole | {"input": {}}}[whole["type"]]  # fmt: skip
        events.append({"type": "content_block_start", "index": index, "content_block": empty})
        if index == 0:
            events.append({"type": "ping"})
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    delta = {"stop_reason": plan.stop_reason, "stop_sequence": plan.stop_sequence}
    end: dict[str, Any] = {"type": "message_delta", "delta": delta}
    if plan.usage is not None:
        full = plan.settings.get("full_delta_usage")
        end["usage"] = dict(plan.usage) if full else {"output_tokens": plan.usage["output_tokens"]}
    return [*events, end, {"type": "message_stop"}]


def encode(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


# --- reading the request -------------------------------------------------------------------


def _invalid(body: dict[str, Any], *, needs_max_tokens: bool) -> str | None:
    if not isinstance(body.get("model"), str):
        return "model: Field required"
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return "messages: Field required"
    max_tokens = body.get("max_tokens")
    if needs_max_tokens and (not isinstance(max_tokens, int) or max_tokens < 1):
        return "max_tokens: Field required"
    return None


def _over_budget(body: dict[str, Any], headers: Any) -> str | None:
    """Extended thinking's rule: budget_tokens below max_tokens, but with interleaved thinking
    (its beta) and tools, where the budget spans the turn (Anthropic's extended thinking guide)."""
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int):
        return "thinking.enabled.budget_tokens: Field required"
    interleaved = "interleaved-thinking-" in headers.get("anthropic-beta", "")
    if (interleaved and body.get("tools")) or budget < body["max_tokens"]:
        return None
    return "`max_tokens` must be greater than `thinking.budget_tokens`"


def _settings(body: dict[str, Any]) -> dict[str, Any]:
    """The test's wishes: the `mock` object, then `metadata.user_id = "mock:k=v,k=v"`."""
    settings: dict[str, Any] = {}
    metadata = body.get("metadata")
    user = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user, str) and user.startswith("mock:"):
        for pair in user[5:].split(","):
            key, _, value = pair.partition("=")
            settings[key.strip()] = float(value) if "." in value else int(value)
    mock = body.get("mock")
    return settings | (mock if isinstance(mock, dict) else {})


def _usage(body: dict[str, Any], settings: dict[str, Any]) -> dict[str, int]:
    prompt = json.dumps([body.get("system"), body.get("messages"), body.get("tools")])
    return {
        "input_tokens": int(settings.get("input_tokens", math.ceil(len(prompt) / 4))),
        "cache_creation_input_tokens": int(settings.get("cache_creation_input_tokens", 0)),
        "cache_read_input_tokens": int(settings.get("cache_read_input_tokens", 0)),
        "output_tokens": 0,
    }


def _tool_call(body: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any] | None:
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and "input_schema" in t]
    choice = body.get("tool_choice")
    if not isinstance(choice, dict):
        choice = {}
    kind = choice.get("type", "auto")
    if not tools or kind == "none":
        return None
    last = body["messages"][-1]
    content = last.get("content") if isinstance(last, dict) else None
    answered = isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )
    if kind == "auto" and answered:
        return None
    chosen = next((t for t in tools if t["name"] == choice.get("name")), tools[0])
    given = settings.get("tool_input")
    tool_input = given if isinstance(given, dict) else _input_for(chosen["input_schema"])
    return {"type": "tool_use", "id": f"toolu_mock_{next(_ids)}", "name": chosen["name"],
            "input": tool_input}  # fmt: skip


def _input_for(schema: Any) -> dict[str, Any]:
    """An input that fits the schema's top-level properties."""
    samples: dict[object, object] = {"string": "mock value", "integer": 1, "number": 1.5,
                                     "boolean": True, "array": [], "object": {}}  # fmt: skip
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return {}
    return {
        name: samples.get(spec.get("type") if isinstance(spec, dict) else None)
        for name, spec in properties.items()
    }
