"""A node for the bench: generated config, an operator key from `nutgate keys create`, and the
other accounts seeded straight into its database through `Ledger.grant`.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from bench.procs import PY, Proc
from node.dev.procs import free_port
from node.money.ledger import Ledger, hash_key
from node.parts import open_database
from node.settings import load_settings

BALANCE_MSAT = 10**12  # far more than any run spends


def write_config(
    data_dir: Path, port: int, upstream: str, mint: str | None, store_url: str = ""
) -> Path:
    mints = f'mints = ["{mint}"]' if mint else "mints = []"
    text = f"""\
[node]
name = "bench node"
host = "127.0.0.1"
port = {port}
data_dir = "{data_dir}"

[store]
url = "{store_url}"

[cashu]
{mints}

[pricing]
btc_usd = 100000.0

[limits]
per_minute = 0
per_hour = 0
per_day = 0

[[upstreams]]
name = "mock"
base_url = "{upstream}/v1"

[[models]]
id = "bench-model"
input_usd_per_mtok = 1.0
output_usd_per_mtok = 2.0
max_output_tokens = 1000
"""
    path = data_dir / "nutgate.toml"
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def seed(config: Path, accounts: int) -> tuple[list[str], float]:
    """`accounts` more funded keys, one `Ledger.grant` each; returns them and the seconds taken."""
    db = open_database(load_settings(config))
    ledger = Ledger(db)
    keys = ["sk-" + secrets.token_urlsafe(32) for _ in range(accounts)]
    t0 = time.perf_counter()
    for key in keys:
        ledger.grant(hash_key(key), BALANCE_MSAT, ref="bench")
    took = time.perf_counter() - t0
    db.close()
    return keys, took


class BenchNode:
    def __init__(
        self,
        name: str,
        workdir: Path,
        upstream: str,
        mint: str | None,
        cpu: int | None,
        store_url: str = "",
        keys: list[str] | None = None,
    ):
        self.name = name
        self.port = free_port()
        self.data_dir = workdir / name
        self.config = write_config(self.data_dir, self.port, upstream, mint, store_url)
        self.keys = keys if keys is not None else seed(self.config, 1)[0]
        self.keys_file = self.data_dir / "keys.txt"
        self.seed_s = 0.0
        self.proc = Proc(
            name,
            [PY, "-m", "node.cli", "serve", "--config", str(self.config)],
            self.port,
            workdir,
            cpu=cpu,
        )

    def add_accounts(self, total: int) -> None:
        more, self.seed_s = seed(self.config, total - len(self.keys))
        self.keys += more

    def start(self) -> BenchNode:
        self.keys_file.write_text("\n".join(self.keys) + "\n")
        self.proc.start().wait_ready("/health")
        return self

    @property
    def url(self) -> str:
        return self.proc.url
