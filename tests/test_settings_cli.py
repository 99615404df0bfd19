"""Configuration file, environment overrides, and the `nutgate` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from node.settings import ConfigError, load_settings
from tests.conftest import NodeHandle

NUTGATE = [sys.executable, "-m", "node.cli"]
ENV = {k: v for k, v in os.environ.items() if not k.startswith("NUTGATE_")}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "nutgate.toml"
    path.write_text(text)
    return path


def test_file_is_read_and_env_overrides_a_single_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, '[node]\nname = "From file"\nport = 8100\n[pricing]\nbtc_usd = 50000\n')
    monkeypatch.setenv("NUTGATE_NODE__PORT", "8200")
    settings = load_settings(path)
    assert (settings.node.name, settings.node.port) == ("From file", 8200)
    assert settings.pricing.btc_usd == 50000


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[node]\nport = 'eighty'\n", "node.port"),
        ("[pricing]\nmarkup = -1\n", "pricing.markup"),
        ("[node]\nnmae = 'typo'\n", "node.nmae"),
        ("[cashu]\nmints = ['ftp://mint']\n", "cashu.mints"),
        ("[[models]]\nid = 'm'\nupstream = 'nowhere'\n", "models.0.upstream"),
        ("[node\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_settings(write(tmp_path, text))


def test_serve_refuses_a_bad_config_with_the_key_named(tmp_path: Path) -> None:
    path = write(tmp_path, "[node]\nport = 'eighty'\n")
    result = subprocess.run(
        [*NUTGATE, "serve", "--config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "node.port" in result.stderr
    assert "Traceback" not in result.stderr


def node_config_file(node: NodeHandle, tmp_path: Path) -> Path:
    """The running test node's configuration, as its operator would pass it with --config."""
    return write(tmp_path, f'[node]\ndata_dir = "{node.settings.node.data_dir}"\n')


def nutgate(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NUTGATE, *args], capture_output=True, text=True, timeout=60, cwd=cwd, env=ENV
    )


def test_keys_create_grants_an_operator_funded_key(node: NodeHandle, tmp_path: Path) -> None:
    path = node_config_file(node, tmp_path)
    result = nutgate("keys", "create", "--config", str(path), "--balance-msat", "5000")
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("sk-")
    assert node.balance(key) == 5000
    audit = nutgate("audit", "--config", str(path))
    assert audit.returncode == 0 and "audit clean" in audit.stdout
    assert "1 accounts, 0 msat owed as ecash, 5000 msat operator credit" in audit.stdout


@pytest.mark.parametrize(
    "command",
    [["keys", "create", "--balance-msat", "5"], ["admin", "reset-password"], ["audit"]],
)
def test_commands_refuse_a_database_no_node_uses(tmp_path: Path, command: list[str]) -> None:
    path = write(tmp_path, f'[node]\ndata_dir = "{tmp_path / "data"}"\n')
    for args in ([*command, "--config", str(path)], command):  # and the default ./data
        result = nutgate(*args, cwd=tmp_path)
        assert result.returncode != 0
        assert "no node has run on" in result.stderr and "--config" in result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "data").exists()  # nothing was created


def test_help_lists_every_subcommand() -> None:
    out = subprocess.run([*NUTGATE, "--help"], capture_output=True, text=True, timeout=60).stdout
    for name in ("serve", "run", "keys", "admin", "audit", "config"):
        assert name in out


def test_admin_reset_password_gives_a_new_one_that_logs_in(
    node: NodeHandle, tmp_path: Path
) -> None:
    result = nutgate("admin", "reset-password", "--config", str(node_config_file(node, tmp_path)))
    assert result.returncode == 0, result.stderr
    password = result.stdout.strip().rsplit(" ", 1)[-1]
    from node.admin import tables
    from node.admin.auth import verify_password

    stored = tables.get_secret(node.db, "password")
    assert stored is not None and verify_password(password, stored)
