"""Async OpenAI SDK clients that are closed at the end of each test.

An async client left for the garbage collector is finalized in whichever thread happens to
collect it, often a node's server thread: its sockets are then closed behind the back of the
test's event loop, which can stop that loop from ever seeing a later answer (a test that hangs
on a reply the node has already sent). Closing them on their own loop avoids that.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pydantic
import pytest

_open: list[openai.AsyncOpenAI] = []


def async_openai(base_url: str, api_key: str, **headers: str) -> openai.AsyncOpenAI:
    client = openai.AsyncOpenAI(
        base_url=base_url, api_key=api_key, max_retries=0, default_headers=headers
    )
    _open.append(client)
    return client


def extra(answer: pydantic.BaseModel | None) -> dict[str, Any]:
    """The fields of an SDK object its model does not declare: the node's `cost_msat`,
    `x_cashu` and the like (None, the field absent, fails the test)."""
    assert answer is not None and answer.model_extra is not None, answer
    return answer.model_extra


@pytest.fixture(autouse=True)
async def close_async_openai_clients() -> AsyncIterator[None]:
    yield
    while _open:
        await _open.pop().close()
