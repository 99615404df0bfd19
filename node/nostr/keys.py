"""The node on Nostr: its key, its kind-38421 announcement (RIP-02), and discovery of other nodes.

    load_or_create_keys(data_dir, nsec)  the node key: from config, or kept in data_dir (0600)
    Announcement                         what the node says about itself
    build_event(keys, announcement)      the signed kind-38421 addressable event
    select_nodes(events)                 verified, newest per (pubkey, d), with a `u`: NodeInfo
    NostrService (node.nostr.service)    publishes in the background, re-publishes, discovers

Everything read from a relay is untrusted: signatures are checked here, explicitly, whatever the
relay or the SDK already did, and every string is capped before it reaches `/v1/nodes`.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nostr_sdk import EventBuilder, Keys, Kind, RelayUrl, Tag, Timestamp

if TYPE_CHECKING:
    from node.settings import Settings

log = logging.getLogger(__name__)

ANNOUNCEMENT_KIND = 38421
KEY_FILE = "nostr.nsec"

# Caps on what another node's announcement may put into /v1/nodes.
MAX_NAME = 100
MAX_ABOUT = 1000
MAX_URL = 500
MAX_URLS = 10
MAX_MINTS = 20


class NostrKeyError(ValueError):
    """The node key in config or in data_dir cannot be used; the message says which."""


def load_or_create_keys(data_dir: Path, nsec: str = "") -> Any:
    """The node's `Keys`: `nsec` (bech32 or hex) if given, else the key kept in data_dir.

    On first start a key is generated and written to `data_dir/nostr.nsec`, readable by the
    owner only (0600). A key file found with wider permissions is narrowed to 0600.
    """
    if nsec.strip():
        return _parse_key(nsec.strip(), "nostr.nsec")
    path = Path(data_dir) / KEY_FILE
    if not path.exists():
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        keys = Keys.generate()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race: use its key
            return load_or_create_keys(data_dir)
        with os.fdopen(fd, "w") as fh:
            fh.write(str(keys.secret_key().to_bech32()) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        log.info("generated node key %s in %s", keys.public_key().to_bech32(), path)
        return keys
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s had mode %o; narrowing to 600", path, mode)
        path.chmod(0o600)
    return _parse_key(path.read_text().strip(), str(path))


def _parse_key(secret: str, where: str) -> Any:
    try:
        return Keys.parse(secret)
    except Exception:  # the SDK's message may echo the input: never show it
        raise NostrKeyError(f"{where}: not a valid nsec or hex secret key") from None


def npub(keys: Any) -> str:
    return str(keys.public_key().to_bech32())


def validate_relay_url(url: str) -> str:
    """The relay URL as the SDK normalises it; ValueError for anything but ws:// or wss://."""
    try:
        return str(RelayUrl.parse(url.strip()))
    except Exception as exc:
        raise ValueError(f"not a relay URL (ws:// or wss://): {url!r}: {exc}") from None


@dataclass(frozen=True)
class Announcement:
    """What the node announces. `d` is the stable identifier; empty means the node's npub."""

    name: str
    about: str = ""
    urls: list[str] = field(default_factory=list)
    mints: list[str] = field(default_factory=list)
    version: str = ""
    d: str = ""

    @classmethod
    def from_settings(cls, settings: Settings, version: str) -> Announcement:
        node = settings.node
        url = node.public_url or f"http://{node.host}:{node.port}"
        return cls(
            name=node.name,
            about=node.description,
            urls=[url.rstrip("/")],
            mints=list(settings.cashu.mints),
            version=version,
        )


def build_event(keys: Any, announcement: Announcement, created_at: int | None = None) -> Any:
    """The signed kind-38421 event: tags d, u…, mint…, version; content {"name","about"}."""
    a = announcement
    tags = [Tag.parse(["d", a.d or npub(keys)])]
    tags += [Tag.parse(["u", url]) for url in a.urls]
    tags += [Tag.parse(["mint", mint]) for mint in a.mints]
    if a.version:
        tags.append(Tag.parse(["version", a.version]))
    content = json.dumps({"name": a.name, "about": a.about}, ensure_ascii=False)
    builder = EventBuilder(Kind(ANNOUNCEMENT_KIND), content).tags(tags)
    if created_at is not None:
        builder = builder.custom_created_at(Timestamp.from_secs(created_at))
    return builder.finalize(keys)


@dataclass(frozen=True)
class NodeInfo:
    """Another node, as its newest valid announcement describes it."""

    id: str  # the `d` identifier; (pubkey, id) names the node
    pubkey: str  # hex
    npub: str
    name: str
    about: str
    urls: list[str]
    mints: list[str]
    version: str
    created_at: int
    event_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pubkey": self.pubkey,
            "npub": self.npub,
            "name": self.name,
            "about": self.about,
            "urls": list(self.urls),
            "mints": list(self.mints),
            "version": self.version,
            "created_at": self.created_at,
            "event_id": self.event_id,
        }


def select_nodes(events: Iterable[Any], exclude_pubkey: str = "") -> list[NodeInfo]:
    """Verified kind-38421 events → nodes: newest per (pubkey, d), only those with a `u`.

    Newest is chosen before the `u` check, so a replacement without URLs withdraws a node.
    Ties on created_at go to the lowest event id (NIP-01). Newest first.
    """
    newest: dict[tuple[str, str], tuple[int, str, Any]] = {}
    for event in events:
        if not _acceptable(event):
            continue
        pubkey = str(event.author().to_hex())
        key = (pubkey, _first(_tag_values(event, "d")))
        created_at, event_id = int(event.created_at().as_secs()), str(event.id().to_hex())
        held = newest.get(key)
        if held is None or _newer(created_at, event_id, held[0], held[1]):
            newest[key] = (created_at, event_id, event)
    nodes = [_node_info(event) for _, _, event in newest.values()]
    found = [n for n in nodes if n.urls and n.pubkey != exclude_pubkey]
    return sorted(found, key=lambda n: (-n.created_at, n.pubkey, n.id))


def _acceptable(event: Any) -> bool:
    if int(event.kind().as_u16()) != ANNOUNCEMENT_KIND:
        return False
    if not (event.verify_id() and event.verify_signature()):
        log.info("dropped announcement %s: bad id or signature", event.id().to_hex())
        return False
    return not event.is_expired()


def _newer(created_at: int, event_id: str, held_at: int, held_id: str) -> bool:
    return created_at > held_at or (created_at == held_at and event_id < held_id)


def _tag_values(event: Any, name: str) -> list[str]:
    values = []
    for tag in event.tags():
        parts = tag.to_vec()
        if len(parts) >= 2 and parts[0] == name:
            values.append(str(parts[1]))
    return values


def _first(values: list[str]) -> str:
    return values[0] if values else ""


def _node_info(event: Any) -> NodeInfo:
    name, about = _parse_content(str(event.content()))
    urls = [u.strip() for u in _tag_values(event, "u") if u.strip()]
    mints = [m.strip() for m in _tag_values(event, "mint") if m.strip()]
    return NodeInfo(
        id=_first(_tag_values(event, "d"))[:MAX_URL],
        pubkey=str(event.author().to_hex()),
        npub=str(event.author().to_bech32()),
        name=name,
        about=about,
        urls=[u for u in urls if len(u) <= MAX_URL][:MAX_URLS],
        mints=[m for m in mints if len(m) <= MAX_URL][:MAX_MINTS],
        version=_first(_tag_values(event, "version"))[:MAX_NAME],
        created_at=int(event.created_at().as_secs()),
        event_id=str(event.id().to_hex()),
    )


def _parse_content(content: str) -> tuple[str, str]:
    try:
        meta = json.loads(content)
    except ValueError:
        return "", ""
    if not isinstance(meta, dict):
        return "", ""
    name = meta.get("name")
    about = meta.get("about", meta.get("description"))
    return (
        name[:MAX_NAME] if isinstance(name, str) else "",
        about[:MAX_ABOUT] if isinstance(about, str) else "",
    )
