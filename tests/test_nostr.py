"""Nostr: the node key, the kind-38421 announcement on a real relay, and discovery of nodes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from nostr_sdk import Event, Keys

from node.nostr.keys import (
    KEY_FILE,
    Announcement,
    NostrKeyError,
    build_event,
    load_or_create_keys,
    select_nodes,
    validate_relay_url,
)
from node.nostr.service import NostrService
from node.settings import load_settings
from tests.conftest import NodeHandle
from tests.support.relay import (
    PermissiveRelay,
    RelayHandle,
    local_relay,
    permissive_relay,
    raw_req,
    raw_send,
)

__all__ = ["local_relay", "permissive_relay"]  # fixtures, imported for pytest

FAST = {"retry_min": 0.2, "retry_max": 1.0, "timeout": 2.0}
ANN = Announcement(
    name="Node A",
    about="fast and cheap",
    urls=["https://a.example", "http://aaaa.onion"],
    mints=["https://mint.one", "https://mint.two"],
    version="0.1.0",
)
KIND = {"kinds": [38421]}
Start = Callable[..., Awaitable[NostrService]]


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout}s: {check}")
        await asyncio.sleep(0.1)


@pytest.fixture
async def services() -> AsyncIterator[Start]:
    started: list[NostrService] = []

    async def start(relays: list[str], announce: bool = True, **kw: Any) -> NostrService:
        service = NostrService(Keys.generate(), relays, announce, **{**FAST, **kw})
        if announce:
            service.update(ANN)
        await service.start()
        started.append(service)
        return service

    yield start
    for service in started:
        await service.stop()


def as_dict(event: Any) -> dict[str, Any]:
    return dict(json.loads(event.as_json()))


def tags(event: dict[str, Any], name: str) -> list[str]:
    return [t[1] for t in event["tags"] if t[0] == name]


def reid(event: dict[str, Any]) -> dict[str, Any]:
    """Recompute the id after an edit: the id is then right, the signature wrong."""
    fields = [
        0,
        event["pubkey"],
        event["created_at"],
        event["kind"],
        event["tags"],
        event["content"],
    ]
    serial = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    return {**event, "id": hashlib.sha256(serial.encode()).hexdigest()}


def forgeries(victim: dict[str, Any]) -> list[dict[str, Any]]:
    """Events claiming the victim's pubkey and d, newer, pointing elsewhere; none validly signed."""
    newer = {**victim, "created_at": victim["created_at"] + 100, "content": '{"name": "evil"}'}
    newer["tags"] = [["d", tags(victim, "d")[0]], ["u", "https://evil.example"]]
    bad_sig = reid(newer)  # right id, signature of another event
    bad_id = {**newer}  # id and signature of the original event
    random_sig = {**bad_sig, "sig": secrets.token_hex(64)}
    return [bad_sig, bad_id, random_sig]


# -- the node key ---------------------------------------------------------------------------


def test_node_key_is_generated_once_and_kept_owner_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = load_or_create_keys(data_dir)
    key_file = data_dir / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().startswith("nsec1")
    again = load_or_create_keys(data_dir)
    assert again.public_key().to_hex() == first.public_key().to_hex()
    assert first.public_key().to_bech32().startswith("npub1")


def test_key_file_with_wide_permissions_is_narrowed(tmp_path: Path) -> None:
    keys = load_or_create_keys(tmp_path)
    (tmp_path / KEY_FILE).chmod(0o644)
    assert load_or_create_keys(tmp_path).public_key().to_hex() == keys.public_key().to_hex()
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600


def test_configured_nsec_wins_and_a_bad_one_is_refused_without_echo(tmp_path: Path) -> None:
    keys = Keys.generate()
    for given in (keys.secret_key().to_bech32(), keys.secret_key().to_hex()):
        loaded = load_or_create_keys(tmp_path, given)
        assert loaded.public_key().to_hex() == keys.public_key().to_hex()
    assert not (tmp_path / KEY_FILE).exists()
    with pytest.raises(NostrKeyError) as caught:
        load_or_create_keys(tmp_path, "nsec1secretbutbroken")
    assert "secretbutbroken" not in str(caught.value)


def test_relay_urls_are_checked() -> None:
    assert validate_relay_url(" wss://relay.example ") == "wss://relay.example"
    for bad in ("https://relay.example", "relay.example", ""):
        with pytest.raises(ValueError):
            validate_relay_url(bad)


# -- the announcement -----------------------------------------------------------------------


def test_announcement_event_carries_the_rip02_tags() -> None:
    keys = Keys.generate()
    event = as_dict(build_event(keys, ANN))
    assert event["kind"] == 38421
    assert tags(event, "d") == [keys.public_key().to_bech32()]
    assert tags(event, "u") == ANN.urls
    assert tags(event, "mint") == ANN.mints
    assert tags(event, "version") == ["0.1.0"]
    assert json.loads(event["content"]) == {"name": "Node A", "about": "fast and cheap"}
    custom = as_dict(build_event(keys, Announcement(name="x", urls=["u"], d="node-1")))
    assert tags(custom, "d") == ["node-1"]


def test_announcement_follows_the_settings() -> None:
    settings = load_settings(
        node={"name": "N", "description": "D", "public_url": "https://n.example/"},
        cashu={"mints": ["https://mint.one/"]},
    )
    ann = Announcement.from_settings(settings, "1.2.3")
    assert ann == Announcement("N", "D", ["https://n.example"], ["https://mint.one"], "1.2.3")
    local = Announcement.from_settings(load_settings(node={"port": 8123}), "1")
    assert local.urls == ["http://127.0.0.1:8123"]


async def test_announcement_appears_on_the_relay_signed(
    local_relay: RelayHandle, services: Start
) -> None:
    node = await services([local_relay.url])
    found = await eventually(lambda: raw_req(local_relay.url, KIND))
    assert len(found) == 1
    event = found[0]
    assert event["pubkey"] == node.pubkey
    assert tags(event, "d") == [node.npub]
    assert tags(event, "u") == ANN.urls
    assert tags(event, "mint") == ANN.mints
    assert tags(event, "version") == ["0.1.0"]
    parsed = Event.from_json(json.dumps(event))
    assert parsed.verify_id() and parsed.verify_signature()
    assert node.status() == {local_relay.url: {"published": True, "last_error": ""}}


async def test_unchanged_announcement_is_not_republished(services: Start) -> None:
    node = await services([])
    event_id = node.event.id().to_hex()
    assert node.update(Announcement(**ANN.__dict__)) is False
    assert node.event.id().to_hex() == event_id


async def test_rename_publishes_a_replacement_that_discovery_returns(
    local_relay: RelayHandle, services: Start
) -> None:
    node = await services([local_relay.url])
    observer = await services([local_relay.url], announce=False)

    async def names() -> list[str]:
        return [n.name for n in await observer.discover() if n.pubkey == node.pubkey]

    assert await eventually(names) == ["Node A"]
    old_id = node.event.id().to_hex()
    assert node.update(Announcement(**{**ANN.__dict__, "name": "Node A2"})) is True  # same second
    assert await eventually(lambda: _when(names, ["Node A2"])) == ["Node A2"]
    on_relay = await raw_req(local_relay.url, KIND)
    assert [e["id"] for e in on_relay] == [node.event.id().to_hex()] != [old_id]
    listed = (await observer.discover())[0].to_json()
    assert listed["urls"] == ANN.urls and listed["mints"] == ANN.mints
    assert set(listed) >= {"id", "pubkey", "name", "about", "version", "created_at"}
    assert await node.discover() == []  # a node does not list itself


async def _when(get: Callable[[], Awaitable[Any]], want: Any) -> Any:
    got = await get()
    return got if got == want else None


async def test_the_local_relay_refuses_forgeries(local_relay: RelayHandle) -> None:
    victim = as_dict(build_event(Keys.generate(), ANN))
    for forged in forgeries(victim):
        ok = await raw_send(local_relay.url, forged)
        assert ok[2] is False
    assert await raw_req(local_relay.url, KIND) == []


async def test_forged_and_older_announcements_never_show(
    permissive_relay: PermissiveRelay, services: Start
) -> None:
    keys = Keys.generate()
    now = int(time.time())
    current = as_dict(build_event(keys, ANN, created_at=now - 10))
    older = as_dict(build_event(keys, Announcement(name="old", urls=["https://old"]), now - 500))
    nameless = as_dict(build_event(Keys.generate(), Announcement(name="no url"), now))
    permissive_relay.events += [older, *forgeries(current), current, nameless]
    observer = await services([permissive_relay.url], announce=False)
    nodes = await eventually(observer.discover)
    assert [(n.name, n.urls, n.event_id) for n in nodes] == [("Node A", ANN.urls, current["id"])]


async def test_a_relay_swapping_content_under_a_known_id_cannot_hide_or_fake_a_node(
    permissive_relay: PermissiveRelay, services: Start
) -> None:
    """nostr-sdk's Client, once it has verified an id, takes later events under that id
    unchecked; this relay serves such a swap first, on every request."""
    current = as_dict(build_event(Keys.generate(), ANN))
    swapped = forgeries(current)[1]  # the real id and signature over other content
    permissive_relay.events += [swapped, current]
    observer = await services([permissive_relay.url], announce=False)
    for _ in range(3):
        nodes = await observer.discover()
        assert [(n.name, n.urls) for n in nodes] == [("Node A", ANN.urls)]


def test_discovery_checks_signatures_itself() -> None:
    """The SDK and LocalRelay drop forgeries too; select_nodes must not rely on them."""
    keys = Keys.generate()
    now = int(time.time())
    current = as_dict(build_event(keys, ANN, created_at=now))
    forged = [Event.from_json(json.dumps(f)) for f in forgeries(current)]
    assert [f.verify() for f in forged] == [False, False, False]
    real = Event.from_json(json.dumps(current))
    nodes = select_nodes([*forged, real])
    assert [(n.name, n.urls) for n in nodes] == [("Node A", ANN.urls)]
    assert select_nodes(forged) == []


def test_newest_wins_per_pubkey_and_d_and_a_newest_without_url_withdraws() -> None:
    keys, other = Keys.generate(), Keys.generate()
    now = int(time.time())
    old = build_event(keys, ANN, created_at=now - 60)
    new = build_event(keys, Announcement(name="new", urls=["https://new"]), created_at=now)
    second_d = build_event(keys, Announcement(name="two", urls=["https://2"], d="b"), now - 90)
    assert [n.name for n in select_nodes([new, old, second_d])] == ["new", "two"]
    assert [n.name for n in select_nodes([old, new])] == ["new"]
    withdrawn = build_event(keys, Announcement(name="gone"), created_at=now + 1)
    assert [n.name for n in select_nodes([old, new, withdrawn])] == []
    junk = build_event(other, Announcement(name="x" * 5000, urls=["https://x"]), now)
    assert len(select_nodes([junk])[0].name) == 100


async def test_relay_down_at_start_does_not_delay_and_gets_the_announcement_later(
    services: Start,
) -> None:
    relay = RelayHandle()  # port chosen, nothing listening yet
    began = time.monotonic()
    node = await services([relay.url])
    assert time.monotonic() - began < 0.5
    assert node.status()[relay.url]["published"] is False
    await asyncio.sleep(0.5)
    await relay.start()
    try:
        found = await eventually(lambda: raw_req(relay.url, KIND), timeout=20)
        assert found[0]["id"] == node.event.id().to_hex()
    finally:
        relay.stop()


async def test_announcement_is_republished_to_a_relay_that_lost_it(services: Start) -> None:
    relay = await RelayHandle().start()
    node = await services([relay.url], republish_interval=1.0)
    try:
        await eventually(lambda: raw_req(relay.url, KIND))
        relay.stop()  # LocalRelay keeps events in memory: a restart forgets them
        await relay.start()
        assert await raw_req(relay.url, KIND) == []
        found = await eventually(lambda: raw_req(relay.url, KIND), timeout=20)
        assert found[0]["id"] == node.event.id().to_hex()
    finally:
        relay.stop()


async def test_stop_is_prompt_with_a_dead_relay(services: Start) -> None:
    node = await services([RelayHandle().url])
    began = time.monotonic()
    await node.stop()
    assert time.monotonic() - began < 3


def test_info_names_the_node_key(node: NodeHandle) -> None:
    import json
    import urllib.request

    with urllib.request.urlopen(f"{node.url}/v1/info") as resp:
        info = json.loads(resp.read())
    assert len(info["pubkey"]) == 64 and info["npub"].startswith("npub1")
    assert info["name"] == "test node"
