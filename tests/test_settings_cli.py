"""Configuration file, environment overrides, and the `nutgate` command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from node.settings import ConfigError, load_settings

NUTGATE = [sys.executable, "-m", "node.cli"]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "nutgate.toml"
    path.write_text(text)
    return path


def test_file_is_read_and_env_overrides_a_single_key(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
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


def test_keys_create_grants_an_operator_funded_key(tmp_path: Path) -> None:
    path = write(tmp_path, f'[node]\ndata_dir = "{tmp_path / "data"}"\n')
    result = subprocess.run(
        [*NUTGATE, "keys", "create", "--config", str(path), "--balance-msat", "5000"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("sk-")
    from node.money.ledger import Ledger, hash_key
    from node.parts import open_database

    ledger = Ledger(open_database(load_settings(path)))
    account = ledger.find(hash_key(key))
    assert account is not None and account.balance_msat == 5000
    audit = subprocess.run(
        [*NUTGATE, "audit", "--config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert audit.returncode == 0 and "audit clean" in audit.stdout


def test_help_lists_every_subcommand() -> None:
    out = subprocess.run([*NUTGATE, "--help"], capture_output=True, text=True, timeout=60).stdout
    for name in ("serve", "run", "keys", "admin", "audit", "config"):
        assert name in out


def test_admin_reset_password_gives_a_new_one_that_logs_in(tmp_path: Path) -> None:
    path = write(tmp_path, f'[node]\ndata_dir = "{tmp_path / "data"}"\n')
    result = subprocess.run(
        [*NUTGATE, "admin", "reset-password", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    password = result.stdout.strip().rsplit(" ", 1)[-1]
    from node.admin import tables
    from node.admin.auth import verify_password
    from node.parts import open_database

    stored = tables.get_secret(open_database(load_settings(path)), "password")
    assert stored is not None and verify_password(password, stored)
    assert password not in stored
