"""The README's configuration table documents every setting and is current."""

from __future__ import annotations

import subprocess
import sys


def test_readme_configuration_table_is_current() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "node.docs", "--check"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
