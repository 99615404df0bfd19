"""Shared fixtures: the mock upstream server and nodes running on real sockets."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from node.app import create_app
from node.money.ledger import Ledger, hash_key
from node.parts import open_database
from node.settings import Settings, load_settings
from tests.support.mock_upstream import MockUpstream
from tests.support.servers import ThreadedServer

if TYPE_CHECKING:
    from tests.support.pg import Databases

# mints: real Nutshell mints and its wallet; logcheck: fails a test whose logs hold a secret
# pg: throwaway PostgreSQL databases and the store_backend parameter
# sdk: async OpenAI clients closed after each test
# billing: an upstream that bills as providers do, and nodes selling its models
# messages_node: a node selling models on a mock Anthropic upstream
pytest_plugins = [
    "tests.support.billing",
    "tests.support.messages_node",
    "tests.support.mints",
    "tests.support.logcheck",
    "tests.support.pg",
    "tests.support.sdk",
]

BEHAVIOURS = ["nousage", "slow", "fail500", "fail429", "badjson", "cut"]


def start_mock(name: str = "a", listed: list[str] | None = None) -> ThreadedServer:
    mock = MockUpstream(name, listed)
    server = ThreadedServer(lambda: mock.app).start()
    server.mock = mock
    return server


@pytest.fixture(scope="session")
def upstream() -> Iterator[ThreadedServer]:
    server = start_mock("a")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def upstream_b() -> Iterator[ThreadedServer]:
    """A second mock provider, for routing and failover."""
    server = start_mock("b", listed=["listed-b"])
    yield server
    server.stop()


@pytest.fixture
def fresh_upstream() -> Iterator[ThreadedServer]:
    """A mock of this test's own, free to be taken down or to change what it lists."""
    server = start_mock("c", listed=[])
    yield server
    server.stop()


def node_config(upstream_url: str, data_dir: Path, **sections: Any) -> dict[str, Any]:
    """The test node: $1/$2 per Mtok models on the mock upstream, $100 000/BTC."""
    price = {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0, "max_output_tokens": 1000}
    models = [{"id": "test-model", **price}]
    models += [{"id": f"test-{b}", **price} for b in BEHAVIOURS]
    models.append({"id": "test-hang", "upstream": "impatient", **price})
    models.append(
        {
            **price,
            "id": "test-output-only",
            "input_usd_per_mtok": 0.0,
            "upstream_model": "test-model",
        }
    )
    config: dict[str, Any] = {
        "node": {"data_dir": str(data_dir), "name": "test node"},
        "pricing": {"btc_usd": 100000.0},
        "upstreams": [
            {"name": "mock", "base_url": f"{upstream_url}/v1", "api_key": "sk-upstream-secret"},
            {"name": "impatient", "base_url": f"{upstream_url}/v1", "first_byte_timeout_s": 1.0},
        ],
        "models": models,
    }
    for name, values in sections.items():
        if isinstance(values, dict):
            config.setdefault(name, {}).update(values)
        else:
            config[name] = values
    return config


class NodeHandle:
    """A running node, and a second connection to its database for looking inside."""

    def __init__(self, settings: Settings, server: ThreadedServer):
        self.settings = settings
        self.server = server
        self.url = server.url
        self.db = open_database(settings)
        self.ledger = Ledger(self.db)

    def new_key(self, balance_msat: int) -> str:
        key = "sk-" + secrets.token_urlsafe(16)
        self.ledger.grant(hash_key(key), balance_msat)
        return key

    def balance(self, key: str) -> int:
        account = self.ledger.find(hash_key(key))
        assert account is not None
        return account.balance_msat

    def assert_clean(self) -> None:
        assert self.ledger.audit() == []
        assert self.ledger.open_reservations() == 0


@pytest.fixture
def make_node(
    upstream: ThreadedServer,
    tmp_path_factory: pytest.TempPathFactory,
    store_backend: str,
    pg_databases: Databases,
) -> Iterator[Callable[..., NodeHandle]]:
    """Nodes on SQLite, or each on a PostgreSQL database of its own (`store_backend`)."""
    handles: list[NodeHandle] = []

    def make(**sections: Any) -> NodeHandle:
        data_dir = tmp_path_factory.mktemp("node")
        if store_backend == "postgres" and "store" not in sections:
            sections["store"] = {"url": pg_databases.new()}
        settings = load_settings(None, **node_config(upstream.url, data_dir, **sections))
        server = ThreadedServer(lambda: create_app(settings)).start()
        handles.append(NodeHandle(settings, server))
        return handles[-1]

    yield make
    for handle in handles:
        handle.server.stop()
        handle.db.close()


@pytest.fixture
def node(make_node: Callable[..., NodeHandle]) -> NodeHandle:
    return make_node()
