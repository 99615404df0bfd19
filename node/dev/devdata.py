"""The dev node's data directory: the mint it belongs to, its config file, its admin password.

`nutgate run` keeps, in the node's data directory (./data/dev):
- `devstack.json` (0600): the dev mint's URL the data belongs to (its keysets are remembered by
  URL, so a moved mint would be refused) and the dev admin password;
- `nutgate.toml`: the node's whole configuration, rewritten at every start, so that
  `nutgate keys create | admin reset-password | audit --config data/dev/nutgate.toml` act on the
  running node's data (the banner prints these commands).

The dev admin password is set in the database at every start, so the banner's one always works
(a dev stack: a password changed on the page or by `reset-password` lasts until the restart).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from node.admin.auth import AdminAuth
from node.dev.devmint import DevStackError
from node.parts import open_database
from node.settings import Settings

NODE_DIR = Path("data/dev")  # relative to where `nutgate run` starts (`make run`: the checkout)
MARKER = "devstack.json"
CONFIG = "nutgate.toml"


def prepare(node_dir: Path, mint_url: str, *, check_mint: bool) -> str:
    """Create `node_dir`, check it belongs to `mint_url`; the dev admin password."""
    marker = node_dir / MARKER
    known: dict[str, Any] = json.loads(marker.read_text()) if marker.exists() else {}
    if check_mint and known.get("mint_url", mint_url) != mint_url:
        raise DevStackError(
            f"{node_dir} belongs to a dev mint at {known['mint_url']}; run with the same "
            "--mint-port, or --fresh for throwaway data"
        )
    password = known.get("admin_password")
    if not isinstance(password, str) or not password:
        password = secrets.token_urlsafe(12)
    node_dir.mkdir(parents=True, exist_ok=True)
    _write_private(marker, json.dumps({"mint_url": mint_url, "admin_password": password}) + "\n")
    return password


def write_config(node_dir: Path, config: dict[str, Any]) -> Path:
    """The node's configuration as a TOML file the CLI commands read with --config."""
    path = node_dir / CONFIG
    header = "# Written by `nutgate run` at every start: edits here are overwritten.\n"
    _write_private(path, header + to_toml(config))
    return path


def set_admin_password(settings: Settings, password: str) -> None:
    """Make `password` the admin password of the node's database (before the node starts)."""
    db = open_database(settings)
    try:
        AdminAuth(db).set_password(password)
    finally:
        db.close()


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)  # an older file keeps its mode through O_CREAT


def to_toml(config: dict[str, Any]) -> str:
    """TOML for the dev config's shapes: tables of scalars and lists, arrays of tables."""
    lines: list[str] = []
    for name, value in config.items():
        if isinstance(value, dict):
            lines += ["", f"[{name}]", *_pairs(value)]
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                lines += ["", f"[[{name}]]", *_pairs(item)]
        else:
            lines.insert(0, f"{name} = {_value(value)}")
    return "\n".join(lines).lstrip("\n") + "\n"


def _pairs(table: dict[str, Any]) -> list[str]:
    return [f"{key} = {_value(value)}" for key, value in table.items()]


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {type(value).__name__}")
