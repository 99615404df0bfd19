"""The dev stack, as clients meet it: discovery lists only what the demo upstream serves, and
each endpoint listed answers in OpenAI's shapes, to the Python SDK and to the JS SDK's helpers
(`.stream()`, `runTools()`, `responses.stream()`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionMessageParam

from node.dev.demo_upstream import ENDPOINTS
from tests.support.devstack import DevStack
from tests.support.mints import MINT_PYTHON

OPENAI_JS = Path(__file__).resolve().parent / "interop" / "openai_js"
WEATHER: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(node URL, the banner's token) of a running dev stack."""
    if not MINT_PYTHON.exists():
        pytest.fail(f"{MINT_PYTHON} missing: run `make dev`")
    stack = DevStack(tmp_path)
    banner = stack.start()
    node = re.search(r"^\s+node\s+(http://\S+)$", banner, re.M)
    token = re.search(r"^(cashuB\S+)$", banner, re.M)
    assert node and token, banner
    yield node.group(1), token.group(1)
    stack.stop()
    logged = (tmp_path / "stderr-1.txt").read_text()
    assert "is not offered" not in logged and "Traceback" not in logged, logged


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


def call_endpoint(client: OpenAI, endpoint: str) -> str:
    """One call of `endpoint` as an SDK user makes it; the text (or a summary) it got back."""
    model = "demo-small"
    if endpoint == "chat/completions":
        hello: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
        reply = client.chat.completions.create(model=model, messages=hello)
        return reply.choices[0].message.content or ""
    if endpoint == "completions":
        return client.completions.create(model=model, prompt="hi").choices[0].text
    if endpoint == "embeddings":
        vectors = client.embeddings.create(model=model, input=["one", "two"]).data
        assert len(vectors) == 2 and len(vectors[0].embedding) == 16
        assert abs(sum(v * v for v in vectors[0].embedding) - 1) < 1e-3  # base64 decoded
        return "canned answer: embeddings"
    if endpoint == "responses":
        return client.responses.create(model=model, input="hi").output_text
    raise AssertionError(f"the dev stack lists {endpoint}, which this test does not know")


def test_discovery_lists_only_what_the_demo_upstream_serves_and_each_one_answers(
    dev: tuple[str, str],
) -> None:
    url, token = dev
    listed = get(url + "/v1/info")["endpoints"]
    assert listed == ENDPOINTS  # no images, no audio: the demo upstream does not serve them
    for provider in get(url + "/v1/providers")["providers"]:
        assert provider["endpoints"] == ENDPOINTS
    assert get(url + "/v1/providers/demo")["endpoints"] == ENDPOINTS
    client = OpenAI(base_url=url + "/v1", api_key=token, max_retries=0)
    for endpoint in listed:
        assert "canned answer" in call_endpoint(client, endpoint), endpoint

    # Streams and tools, in OpenAI's shapes: one id, the role first, a tool call, then text.
    hello: list[ChatCompletionMessageParam] = [{"role": "user", "content": "stream"}]
    chunks = list(
        client.chat.completions.create(
            model="demo-small",
            messages=hello,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert len({c.id for c in chunks}) == 1 and chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    asked: list[ChatCompletionMessageParam] = [{"role": "user", "content": "weather in Lisbon?"}]
    called = client.chat.completions.create(
        model="demo-small",
        messages=asked,
        tools=[WEATHER],
    ).choices[0]
    assert called.finish_reason == "tool_calls" and called.message.tool_calls
    call = called.message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)
    events = list(client.responses.create(model="demo-small", input="hi", stream=True))
    assert events[-1].type == "response.completed"
    assert "canned answer" in events[-1].response.output_text

    # Not served: 501 before any payment, not the client's 400; the token is untouched.
    no_pay = OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    attempts: list[Callable[[], object]] = [
        lambda: no_pay.images.generate(model="demo-small", prompt="a cat"),
        lambda: client.images.generate(model="demo-small", prompt="a cat"),
    ]
    for attempt in attempts:
        with pytest.raises(Exception) as refused:
            attempt()
        assert getattr(refused.value, "status_code", None) == 501, refused.value


def test_the_openai_js_sdk_helpers_work_on_the_dev_stack(dev: tuple[str, str]) -> None:
    node = shutil.which("node")
    if node is None or not (OPENAI_JS / "node_modules" / "openai").exists():
        pytest.skip("the OpenAI JS SDK is not installed (`make openai-js` needs npm)")
    url, token = dev
    done = subprocess.run(
        [node, str(OPENAI_JS / "stream.mjs"), url + "/v1", token, "demo-small"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0 and "error" not in result, done.stdout + done.stderr
    stream = result["stream"]
    assert "canned answer" in stream["content"] and stream["deltas"] == stream["content"]
    assert stream["usage"]["completion_tokens"] > 0
    tools = result["tools"]
    assert tools["calls"] == [{"city": "What is the weather in Lisbon?"}]
    assert "sunny, 21 C" in tools["content"]
    responses = result["responses"]
    assert "canned answer" in responses["output_text"]
    assert responses["deltas"] == responses["output_text"]
