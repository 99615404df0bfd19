"""Several upstreams: routing, failover before the first byte, providers and their health."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import openai
import pytest

from node.dev.procs import free_port
from node.pricing.catalogue import prefixes_of
from node.settings.catalogue import UpstreamSection
from tests.conftest import NodeHandle
from tests.support.servers import ThreadedServer
from tests.test_spine import EXACT, client, hello

PRICE = {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0, "max_output_tokens": 1000}


def upstream_conf(name: str, server: ThreadedServer | None, **extra: Any) -> dict[str, Any]:
    url = server.url if server is not None else f"http://127.0.0.1:{free_port()}"  # refused
    conf = {"name": name, "base_url": f"{url}/v1", "first_byte_timeout_s": 1.0}
    return conf | {"health_interval_s": 0.1, "models_refresh_s": 0.2} | extra


def received(server: ThreadedServer, model: str) -> int:
    return sum(1 for r in server.mock.received if r["body"].get("model") == model)


@pytest.fixture
def ab_node(
    make_node: Callable[..., NodeHandle], upstream: ThreadedServer, upstream_b: ThreadedServer
) -> Callable[..., NodeHandle]:
    """A node in front of mocks `a` and `b` (and `dead`, which refuses connections)."""

    def make(*models: dict[str, Any], **upstream_extra: Any) -> NodeHandle:
        upstreams = [
            upstream_conf("a", upstream, **upstream_extra),
            upstream_conf("b", upstream_b, default_input_usd_per_mtok=1.0,
                          default_output_usd_per_mtok=2.0),
            upstream_conf("dead", None, list_models=False),
        ]  # fmt: skip
        return make_node(upstreams=upstreams, models=[{**PRICE, **m} for m in models])

    return make


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# --- routing ---------------------------------------------------------------------------------


def test_explicit_model_goes_to_its_upstream(
    ab_node: Callable[..., NodeHandle], upstream: ThreadedServer, upstream_b: ThreadedServer
) -> None:
    node = ab_node({"id": "routed-to-b", "upstream": "b"})
    key = node.new_key(1_000_000)
    answer = client(node, key).chat.completions.create(**hello("routed-to-b"))
    assert answer.system_fingerprint == "b"
    assert received(upstream_b, "routed-to-b") == 1 and received(upstream, "routed-to-b") == 0


def test_listed_model_is_offered_and_routed_to_the_upstream_listing_it(
    ab_node: Callable[..., NodeHandle],
) -> None:
    node = ab_node()
    key = node.new_key(1_000_000)
    ids = [m.id for m in client(node, key).models.list()]
    assert "listed-b" in ids
    assert "mock-model" not in ids  # listed by `a`, which has no price for it: not sold
    answer = client(node, key).chat.completions.create(**hello("listed-b"), extra_body=EXACT)
    assert answer.system_fingerprint == "b"
    assert node.balance(key) == 1_000_000 - 2000  # b's default price, $1/$2 per Mtok
    node.assert_clean()


def test_model_list_is_refreshed(
    make_node: Callable[..., NodeHandle], fresh_upstream: ThreadedServer
) -> None:
    conf = upstream_conf("c", fresh_upstream, default_input_usd_per_mtok=1.0,
                         default_output_usd_per_mtok=1.0)  # fmt: skip
    node = make_node(upstreams=[conf], models=[])
    api = client(node, node.new_key(1000))
    assert [m.id for m in api.models.list()] == []
    fresh_upstream.mock.listed.append("arrived-later")
    wait_for(lambda: [m.id for m in api.models.list()] == ["arrived-later"])


def test_prefix_rule_routes_unlisted_models(
    ab_node: Callable[..., NodeHandle], upstream: ThreadedServer
) -> None:
    node = ab_node(prefixes=["claude-*"], default_input_usd_per_mtok=1.0,
                   default_output_usd_per_mtok=2.0)  # fmt: skip
    key = node.new_key(1_000_000)
    answer = client(node, key).chat.completions.create(**hello("claude-test-1"), extra_body=EXACT)
    assert answer.system_fingerprint == "a"
    assert node.balance(key) == 1_000_000 - 2000
    with pytest.raises(openai.NotFoundError):
        client(node, key).chat.completions.create(**hello("gemini-nowhere"))


def test_builtin_prefix_rules_follow_the_providers_host() -> None:
    def rules(url: str) -> tuple[str, ...]:
        return prefixes_of(UpstreamSection(name="x", base_url=url))

    assert "gpt-*" in rules("https://api.openai.com/v1")
    assert rules("https://api.anthropic.com/v1") == ("claude-*",)
    assert rules("https://api.x.ai/v1") == ("grok-*",)
    assert "gemini-*" in rules("https://generativelanguage.googleapis.com/v1beta/openai")
    assert rules("https://llm.example/v1") == ()


def test_alias_reaches_the_model_under_its_upstream_name(
    ab_node: Callable[..., NodeHandle], upstream: ThreadedServer
) -> None:
    node = ab_node({"id": "nice-name", "upstream_model": "test-model", "aliases": ["nn"]})
    key = node.new_key(1_000_000)
    client(node, key).chat.completions.create(**hello("nn"))
    assert upstream.mock.received[-1]["body"]["model"] == "test-model"


# --- failover --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "upstreams", "stream"),
    [
        ("test-fail500@a", ["a", "b"], False),
        ("test-fail429@a", ["a", "b"], True),
        ("test-model", ["dead", "b"], False),  # connection refused
    ],
)  # after a timeout it charges the timed-out floor too: tests/test_floor_charge.py
def test_failover_answers_from_the_next_upstream_and_charges_once(
    ab_node: Callable[..., NodeHandle],
    upstream_b: ThreadedServer,
    model: str,
    upstreams: list[str],
    stream: bool,
) -> None:
    node = ab_node({"id": model, "upstream": upstreams[0], "upstreams": upstreams[1:]})
    key = node.new_key(1_000_000)
    before = received(upstream_b, model)
    api = client(node, key)
    if stream:
        chunks = list(api.chat.completions.create(**hello(model), stream=True, extra_body=EXACT))
        usage = chunks[-1].usage
        assert usage is not None and usage.model_extra
        assert usage.model_extra["cost_msat"] == 2000
    else:
        answer = api.chat.completions.create(**hello(model), extra_body=EXACT)
        assert answer.system_fingerprint == "b"
    assert received(upstream_b, model) == before + 1
    assert node.balance(key) == 1_000_000 - 2000
    node.assert_clean()


@pytest.mark.parametrize("model", ["test-cut@a", "test-slow@a"])
def test_no_failover_once_the_stream_has_begun(
    ab_node: Callable[..., NodeHandle], upstream_b: ThreadedServer, model: str
) -> None:
    node = ab_node({"id": model, "upstream": "a", "upstreams": ["b"]}, idle_timeout_s=0.5)
    key = node.new_key(1_000_000)
    stream = client(node, key).chat.completions.create(**hello(model, max_tokens=10), stream=True)
    with pytest.raises(openai.APIError):
        list(stream)  # the error event ends the stream
    assert received(upstream_b, model) == 0
    assert node.balance(key) < 1_000_000  # charged for what `a` sent
    node.assert_clean()


def test_all_upstreams_failing_gives_the_last_error_and_charges_nothing(
    ab_node: Callable[..., NodeHandle],
) -> None:
    node = ab_node({"id": "test-fail500", "upstream": "dead", "upstreams": ["a", "b"]})
    key = node.new_key(1_000_000)
    with pytest.raises(openai.InternalServerError) as caught:
        client(node, key).chat.completions.create(**hello("test-fail500"))
    assert caught.value.status_code == 502
    assert node.balance(key) == 1_000_000
    node.assert_clean()


# --- discovery -------------------------------------------------------------------------------


def test_providers_follow_an_upstream_going_down_and_coming_back(
    make_node: Callable[..., NodeHandle], fresh_upstream: ThreadedServer
) -> None:
    node = make_node(
        upstreams=[upstream_conf("c", fresh_upstream, display_name="Provider C")],
        models=[{"id": "c-model", "upstream": "c", **PRICE}],
    )

    def status() -> str:
        listing = get_json(f"{node.url}/v1/providers")[1]["providers"]
        return str(listing[0]["status"])

    wait_for(lambda: status() == "active")
    fresh_upstream.mock.down = True
    wait_for(lambda: status() == "down")
    fresh_upstream.mock.down = False
    wait_for(lambda: status() == "active")
    detail = get_json(f"{node.url}/v1/providers/c")[1]
    assert detail["display_name"] == "Provider C"
    assert detail["models"][0]["id"] == "c-model"
    assert detail["models"][0]["pricing"] == {"prompt": 0.001, "completion": 0.002,
                                              "unit": "1k tokens"}  # fmt: skip
    assert {"endpoints", "features", "description", "status"} <= set(detail)
    assert get_json(f"{node.url}/v1/providers/nope")[0] == 404


def test_info_names_the_node(node: NodeHandle) -> None:
    info = get_json(f"{node.url}/v1/info")[1]
    assert info["name"] == "test node"
    assert {"description", "version", "public_url", "mints", "pubkey"} <= set(info)
    assert "chat/completions" in info["endpoints"]
