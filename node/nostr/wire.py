"""The two relay conversations the node needs (NIP-01), over plain aiohttp websockets.

    publish(session, url, event_json, timeout)   ["EVENT", e] → waits for ["OK", id, true, …]
    query(session, url, filter, limit, timeout)  ["REQ", sub, f] → events until EOSE

nostr-sdk's Client is not used for these: it marks an event id as verified once and then
accepts a later event under the same id without checking it (a relay can swap the content),
and a reconnect it is asked for can stay PENDING for good. Short connections made here, each
under one deadline, keep both out, and leave retries to the service's own schedule.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

MAX_MESSAGE = 512 * 1024  # bytes; a bigger relay message ends the conversation


class RelayError(Exception):
    """The relay could not be reached, refused the event, or broke the protocol."""


@asynccontextmanager
async def _conversation(
    session: aiohttp.ClientSession, url: str, timeout: float
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A websocket to `url`, everything (connect included) within `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            async with session.ws_connect(
                url, max_msg_size=MAX_MESSAGE, timeout=aiohttp.ClientWSTimeout(ws_close=1.0)
            ) as ws:
                yield ws
    except (aiohttp.ClientError, OSError) as exc:
        raise RelayError(str(exc) or type(exc).__name__) from None
    except TimeoutError:
        raise RelayError("timed out") from None


async def publish(
    session: aiohttp.ClientSession, url: str, event_json: str, timeout: float
) -> None:
    """Send one signed event; return once the relay accepts it. Raises RelayError."""
    event_id = json.loads(event_json)["id"]
    async with _conversation(session, url, timeout) as ws:
        await ws.send_str(f'["EVENT",{event_json}]')
        while True:
            message = await _receive(ws)
            if message[:2] == ["OK", event_id]:
                if len(message) > 2 and message[2] is True:
                    return
                reason = str(message[3]) if len(message) > 3 else ""
                raise RelayError(f"refused: {reason}")


async def query(
    session: aiohttp.ClientSession, url: str, filter_: dict[str, Any], limit: int, timeout: float
) -> list[dict[str, Any]]:
    """The events a relay holds for one filter (at most `limit`), as JSON objects, unchecked."""
    sub = "nutgate-" + secrets.token_hex(4)
    events: list[dict[str, Any]] = []
    async with _conversation(session, url, timeout) as ws:
        await ws.send_str(json.dumps(["REQ", sub, {**filter_, "limit": limit}]))
        while len(events) < limit:
            message = await _receive(ws)
            if message[:2] == ["EVENT", sub] and len(message) > 2:
                if isinstance(message[2], dict):
                    events.append(message[2])
            elif message[:2] in (["EOSE", sub], ["CLOSED", sub]):
                break
        await ws.send_str(json.dumps(["CLOSE", sub]))
    return events


async def _receive(ws: aiohttp.ClientWebSocketResponse) -> list[Any]:
    msg = await ws.receive()
    if msg.type != aiohttp.WSMsgType.TEXT:
        raise RelayError(f"connection ended ({msg.type.name})")
    try:
        message = json.loads(msg.data)
    except ValueError:
        raise RelayError("not JSON") from None
    if not isinstance(message, list):
        raise RelayError("not a relay message")
    return message
