"""Async OpenAI SDK clients that are closed at the end of each test.

An async client left for the garbage collector is finalized in whichever thread happens to
collect it, often a node's server thread: its sockets are then closed behind the back of the
test's event loop, which can stop that loop from ever seeing a later answer (a test that hangs
on a reply the node has already sent). Closing them on their own loop avoids that.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest

_open: list[openai.AsyncOpenAI] = []


def async_openai(base_url: str, api_key: str, **headers: str) -> openai.AsyncOpenAI:
    client = openai.AsyncOpenAI(
        base_url=base_url, api_key=api_key, max_retries=0, default_headers=headers
    )
    _open.append(client)
    return client


@pytest.fixture(autouse=True)
async def close_async_openai_clients() -> AsyncIterator[None]:
    yield
    while _open:
        await _open.pop().close()
