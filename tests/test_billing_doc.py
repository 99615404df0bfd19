"""docs/billing.md and its code stay one: every row names tests that exist, every row of the
table tests and every field node/pricing/billing.py refuses is in the document, and the README links
to it."""

from __future__ import annotations

import re
from pathlib import Path

from node.pricing import billing
from tests.test_billing_refusals import REFUSED
from tests.test_billing_table import ROWS

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "billing.md").read_text()


def named_tests() -> list[str]:
    """The backticked entries of the tables' last column."""
    names: list[str] = []
    for line in DOC.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            names += re.findall(r"`([^`]+)`", line.rstrip(" |").rsplit("|", 1)[-1])
    return names


def test_every_test_a_row_names_exists() -> None:
    for name in named_tests():
        kind, _, rest = name.partition(":")
        if kind == "row" and not rest.startswith(":"):
            assert rest in ROWS, name
        elif kind == "refused":
            assert rest in REFUSED, name
        else:
            path, _, function = name.partition("::")
            text = (ROOT / "tests" / path).read_text()
            assert not function or f"def {function}(" in text, name


def test_every_row_tested_and_every_refusal_is_in_the_document() -> None:
    named = set(named_tests())
    assert {f"row:{r}" for r in ROWS} <= named
    assert {f"refused:{r}" for r in REFUSED} <= named
    for field, _, _ in billing.REFUSED_FIELDS:
        assert f"`{field}`" in DOC, field
    for pattern in billing.PER_CALL_MODELS:
        assert f"`{pattern}`" in DOC, pattern


def test_the_readme_links_to_it() -> None:
    assert "docs/billing.md" in (ROOT / "README.md").read_text()
