"""How one metered call travels to one upstream and back, by the dialects of both ends.

    client's dialect    upstream kind   wire
    any OpenAI path     openai          Native: as it came (the meter encodes and measures)
    messages            anthropic       MessagesPassthrough: as it came, with anthropic-version
                                        and anthropic-beta passed on
    messages            openai          MessagesOverChat: translated to chat/completions and back
    chat/completions    anthropic       ChatOverMessages: translated to Messages and back

The call (node/proxy/call.py) asks for a wire per upstream it tries, so a model whose upstreams
speak different dialects fails over between them. A wire measures the answer in the upstream's
dialect (Anthropic's four usage counts, or OpenAI's), before translating it: the charge is the
upstream's bill, whatever the client speaks. The translators are node/dialects (pure).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from node.dialects.chat_to_messages import chat_answer, messages_request
from node.dialects.errors import DialectError
from node.dialects.messages_to_chat import ChatOptions, chat_request, messages_answer
from node.errors import BadRequest, NodeError, UpstreamError
from node.pricing import billing, messages_billing
from node.pricing.model import Model, Route
from node.pricing.prices import Usage
from node.proxy.messages_sse import ChatAsMessages, MessagesAsChat, MessagesReader
from node.proxy.meters import ChatMeter, Measured, Meter, Plan
from node.proxy.sse import SseReader

Json = dict[str, Any]
PASSED_HEADERS = ("anthropic-version", "anthropic-beta")  # to an Anthropic upstream
TRANSLATED = ("chat/completions", "messages")  # the paths an Anthropic upstream can serve
# Betas that open a context past Anthropic's standard one (billed above it at a dearer rate):
# passed on only for a model the node knows to have that context, so its bound holds them.
LONG_CONTEXT_BETA, STANDARD_CONTEXT = "context-1m-", 200_000


class StreamReader(Protocol):
    response: Json | None

    @property
    def usage(self) -> Usage | None: ...
    @property
    def usage_final(self) -> bool: ...

    def feed(self, data: bytes) -> list[bytes]: ...
    def close(self) -> list[bytes]: ...
    def estimated_output_tokens(self) -> int: ...
    def ending(self, cost: Json, extras: Json, fallback: Json) -> bytes: ...
    def failure(self, error: NodeError, extras: Json) -> bytes: ...


class Wire:
    """Native: the request and the answer as they are (an OpenAI client, an OpenAI upstream)."""

    def __init__(self, meter: Meter, model: Model) -> None:
        self.meter, self.model = meter, model
        self.path = meter.path
        self.headers: dict[str, str] = {}

    def encode(self, body: Json) -> tuple[bytes, str]:
        return self.meter.encode(body)

    def measure(self, answer: Json) -> Measured:
        return self.meter.measure(answer)

    def answer(self, answer: Json) -> Json:
        """The answer in the client's dialect."""
        return answer

    def reader(self, plan: Plan) -> StreamReader:
        return SseReader()


class MessagesPassthrough(Wire):
    def __init__(
        self, meter: Meter, model: Model, route: Route, client_headers: Mapping[str, str]
    ) -> None:
        super().__init__(meter, model)
        self.upstream = route.upstream
        passed = {h: client_headers.get(h, "").strip() for h in PASSED_HEADERS}
        passed["anthropic-beta"] = _betas(passed["anthropic-beta"], model)
        self.headers = {h: v for h, v in passed.items() if v}

    def encode(self, body: Json) -> tuple[bytes, str]:
        return self.meter.encode(messages_billing.for_anthropic(body, self.upstream))

    def measure(self, answer: Json) -> Measured:
        return measure_messages(answer)

    def reader(self, plan: Plan) -> StreamReader:
        return MessagesReader()


class MessagesOverChat(Wire):
    def __init__(self, meter: Meter, model: Model, route: Route, stops: Any) -> None:
        super().__init__(meter, model)
        self.path = "chat/completions"
        self.upstream = route.upstream
        self.options = chat_options(route)
        self.stops = [s for s in stops if isinstance(s, str)] if isinstance(stops, list) else []
        self._chat = ChatMeter("chat/completions")

    def encode(self, body: Json) -> tuple[bytes, str]:
        chat = _translated(chat_request, body, self.options)
        # the tier the price holds for, as on a chat request (an absent one bills as "auto")
        chat = billing.for_upstream(self.path, chat, self.upstream)
        return orjson.dumps(chat), "application/json"

    def measure(self, answer: Json) -> Measured:
        return self._chat.measure(answer)

    def answer(self, answer: Json) -> Json:
        return _translated(messages_answer, answer, model=self.model.id, stop_sequences=self.stops)

    def reader(self, plan: Plan) -> StreamReader:
        return ChatAsMessages(self.model.id, self.stops, plan.prompt_tokens)


class ChatOverMessages(Wire):
    def __init__(self, meter: Meter, model: Model, route: Route) -> None:
        super().__init__(meter, model)
        self.path = "messages"
        self.upstream = route.upstream

    def encode(self, body: Json) -> tuple[bytes, str]:
        limit = self.model.max_output_tokens
        sent = _translated(messages_request, body, default_max_tokens=limit)
        return orjson.dumps(messages_billing.for_anthropic(sent, self.upstream)), "application/json"

    def measure(self, answer: Json) -> Measured:
        return measure_messages(answer)

    def answer(self, answer: Json) -> Json:
        return _translated(chat_answer, answer, model=self.model.id)

    def reader(self, plan: Plan) -> StreamReader:
        return MessagesAsChat(self.model.id)


def _betas(given: str, model: Model) -> str:
    """The client's betas but a long context one the model's bound and price would not hold:
    an upstream bills a prompt past the standard context, at its long-context rate (twice the
    input price), which neither the bound (the model's context) nor a flat price would
    reserve or charge; only a price with a tier at the standard context knows that rate."""
    long_rate = any(above <= STANDARD_CONTEXT for above, _ in model.price.tiers)
    if LONG_CONTEXT_BETA not in given or (
        model.context_known and model.context_length > STANDARD_CONTEXT and long_rate
    ):
        return given
    betas = [b.strip() for b in given.split(",")]
    return ",".join(b for b in betas if b and not b.startswith(LONG_CONTEXT_BETA))


def wire_for(
    meter: Meter, model: Model, route: Route, body: Json, client_headers: Mapping[str, str]
) -> Wire | None:
    """The wire to `route`'s upstream; None when it cannot serve this endpoint."""
    anthropic = route.upstream.kind == "anthropic"
    if meter.path == "messages":
        if anthropic:
            return MessagesPassthrough(meter, model, route, client_headers)
        return MessagesOverChat(meter, model, route, body.get("stop_sequences"))
    if not anthropic:
        return Wire(meter, model)
    return ChatOverMessages(meter, model, route) if meter.path == "chat/completions" else None


def check(model: Model, path: str, body: Json) -> None:
    """Before any payment: the request can go to one of the model's upstreams, translated
    where it must be (a 400 in the client's envelope names what cannot be carried)."""
    kinds = {route.upstream.kind for route in model.routes}
    if path not in TRANSLATED and kinds == {"anthropic"}:
        raise BadRequest(
            f"the model {model.id!r} is served over Anthropic's Messages API: use "
            "/v1/chat/completions or /v1/messages",
            param="model",
        )
    if path == "messages" and "openai" in kinds:
        _translated(chat_request, body, ChatOptions())
    if path == "chat/completions" and "anthropic" in kinds:
        _translated(messages_request, body, default_max_tokens=model.max_output_tokens)


def chat_options(route: Route) -> ChatOptions:
    """OpenAI's own API refuses top_k and wants max_completion_tokens (its o-series)."""
    if urlsplit(route.upstream.base_url).hostname == "api.openai.com":
        return ChatOptions(top_k=False, max_tokens_field="max_completion_tokens")
    return ChatOptions()


def measure_messages(answer: Json) -> Measured:
    """An Anthropic answer: its usage, and its output's size for an estimate."""
    chars = 0
    content = answer.get("content")
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        for field in ("text", "thinking"):
            if isinstance(block.get(field), str):
                chars += len(block[field])
        if block.get("type") == "tool_use":
            chars += len(json.dumps(block.get("input")))
    return Measured(Usage.from_anthropic(answer.get("usage")), output_tokens=-(-chars // 4))


def _translated(translate: Any, *args: Any, **kwargs: Any) -> Json:
    """A translator's result; its errors as the node's: a request it cannot carry is a 400,
    an answer it cannot read a 502."""
    try:
        result: Json = translate(*args, **kwargs)
    except DialectError as exc:
        if exc.status == 400:
            raise BadRequest(exc.message, param=exc.param) from None
        raise UpstreamError(exc.message) from None
    return result
