"""`make install` installs a real node and nothing else; `make test` installs all it needs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def planned(target: str, tmp_path: Path) -> str:
    """The commands `make <target>` would run from scratch (nothing is run)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    venvs = [f"VENV={tmp_path / 'venv'}", f"MINT_VENV={tmp_path / 'mint'}"]
    done = subprocess.run(
        ["make", "-n", "-B", target, *venvs], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_install_is_the_node_alone(tmp_path: Path) -> None:
    plan = planned("install", tmp_path)
    assert "pip install --quiet --disable-pip-version-check -e . " in plan
    for dev_only in ("[dev]", "cashu==", "chromium", "npm", str(tmp_path / "mint")):
        assert dev_only not in plan, dev_only


def test_make_test_installs_the_dev_tools_the_dev_mint_and_the_js_sdks(tmp_path: Path) -> None:
    plan = planned("test", tmp_path)
    for needed in ('-e ".[dev]"', "cashu==", "chromium", "cashu_ts", "openai_js", "pytest"):
        assert needed in plan, needed


def test_make_run_installs_the_dev_mint_but_not_the_test_tools(tmp_path: Path) -> None:
    plan = planned("run", tmp_path)
    assert "cashu==" in plan and "[dev]" not in plan
