"""The README's configuration table documents every setting and is current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel, Field

from node.dev import docs


def test_readme_configuration_table_is_current() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "node.dev.docs", "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_undocumented_setting_is_caught() -> None:
    class Section(BaseModel):
        told: int = Field(1, description="Documented")
        untold: int = 2

    class Model(BaseModel):
        part: Section = Field(default_factory=Section)
        items: list[Section] = Field(default_factory=list)

    assert docs.undocumented(Model) == ["[part] untold", "[[items]] untold"]
    row = "| `[part]` | `told` | integer | `1` | `NUTGATE_PART__TOLD` | Documented |"
    assert row in docs.table(Model)


def test_check_mode_fails_on_a_stale_table(tmp_path: Path) -> None:
    stale = tmp_path / "README.md"
    stale.write_text(f"# x\n{docs.BEGIN}\nold\n{docs.END}\nafter\n")
    command = [sys.executable, "-m", "node.dev.docs", "--readme", str(stale)]
    assert subprocess.run([*command, "--check"], capture_output=True).returncode == 1
    assert subprocess.run(command, capture_output=True).returncode == 0
    assert subprocess.run([*command, "--check"], capture_output=True).returncode == 0
    assert stale.read_text().endswith(f"{docs.END}\nafter\n")
