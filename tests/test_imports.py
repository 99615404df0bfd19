"""A node on SQLite does not load PostgreSQL's driver (memory, start-up time): psycopg is
imported only by the PostgreSQL store, when a postgresql:// URL opens one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHECK = """
import sys
from pathlib import Path
import node.app, node.cli, node.parts
from node.db.open import open_store
from node.money.ledger import MIGRATIONS, Ledger
db = open_store("", Path(sys.argv[1]) / "db.sqlite3", {"node": MIGRATIONS})
Ledger(db)
print("psycopg" in sys.modules)
"""


def test_a_sqlite_node_does_not_load_psycopg(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHECK, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
