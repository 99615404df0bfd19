"""How a metered answer is presented to its client: the cost in its fields and headers (the
node's, Routstr's and OpenRouter's names), a stream's last choice, and the small shapes the
call needs. Pure, but for the StreamResponse it streams through."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from node.errors import NodeError, ServiceUnavailable, UpstreamError, UpstreamTimeout
from node.pricing.model import Model
from node.pricing.prices import Pricer, Usage
from node.proxy import upstream
from node.proxy.sse import model_renamed
from node.proxy.stored import Recorder
from node.proxy.wires import StreamReader


def relayer(
    out: web.StreamResponse,
    reader: StreamReader,
    recorder: Recorder | None,
    reshape: Callable[[bytes], bytes] | None,
    names: tuple[str, str],
) -> Callable[[bytes], Awaitable[None]]:
    """The relay of one upstream chunk to `out`: its whole events, `reshape`d if the endpoint
    reshapes them, the model renamed from the upstream's id to the client's (`names`) if they
    differ, in one write. What it needs is decided here, once per stream, not per chunk."""
    feed, write = reader.feed, out.write
    was, now = names

    async def relay(data: bytes) -> None:
        events = feed(data)
        if recorder is not None:  # before the client sees the ids it may name later
            await recorder.note(reader.response)
        if not events:
            return
        if reshape is not None:
            events = [reshape(e) for e in events]
        joined = events[0] if len(events) == 1 else b"".join(events)
        if was != now:
            joined = model_renamed(joined, was, now)
        await write(joined)

    return relay


class EventStream(web.StreamResponse):
    """A streamed answer whose headers leave with its first events, in one write: a
    StreamResponse otherwise sends them alone, which costs the client a wake-up before the
    first byte it waits for."""

    _send_headers_immediately = False


def cost_fields(pricer: Pricer, cost_msat: int) -> dict[str, Any]:
    """The cost in the usage: msat, sat (Routstr) and USD (`cost`, as OpenRouter)."""
    fields: dict[str, Any] = {"cost_msat": cost_msat, "cost_sats": cost_msat / 1000}
    with contextlib.suppress(ServiceUnavailable):  # the BTC rate went stale meanwhile
        per_usd = pricer.msat_per_usd()  # the exact quotient, rounded once: int / int
        fields["cost"] = cost_msat * per_usd.denominator / per_usd.numerator
    return fields


def cost_headers(
    pricer: Pricer,
    model: Model,
    cost_msat: int,
    prompt_tokens: int,
    cached_tokens: int,
    usd: float | None,
) -> dict[str, str]:
    """X-Cost-Msat, and Routstr's X-Routstr-Cost-* (the prompt's part and the rest); `usd`:
    the cost's `cost` field (cost_fields), if there is one."""
    prompt = Usage(prompt_tokens, 0, cached_tokens)
    prompt_msat = min(cost_msat, pricer.cost_msat(model.price, prompt))
    headers = {
        "X-Cost-Msat": str(cost_msat),
        "X-Routstr-Cost-Msats": str(cost_msat),
        "X-Routstr-Input-Cost-Msats": str(prompt_msat),
        "X-Routstr-Output-Cost-Msats": str(cost_msat - prompt_msat),
    }
    if usd is not None:
        headers["X-Routstr-Cost-Usd"] = f"{usd:.9f}"
    return headers


def closing_choice(path: str, finish_reason: Any) -> dict[str, Any]:
    """The last chunk's choice for a client that did not ask for usage: empty, repeating how
    the first answer ended; the usage (with the cost) and any change ride along on it."""
    empty: dict[str, Any] = {"text": ""} if path == "completions" else {"delta": {}}
    ended = finish_reason if isinstance(finish_reason, str) else "stop"
    return {"index": 0, **empty, "logprobs": None, "finish_reason": ended}


def json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def mime(answer: upstream.Answer) -> str:
    return answer.content_type.split(";")[0].strip() or "text/plain"


def stream_error(exc: BaseException) -> NodeError:
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout("upstream stopped sending")
    return UpstreamError("upstream connection failed mid-stream")
