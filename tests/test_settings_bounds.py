"""Numbers the settings refuse: infinite or NaN floats, and prices too large to charge.

Each was accepted before, from the file, the environment or the admin API; an infinite or huge
price then made every estimate and paid request a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from node.settings import ConfigError, load_settings
from tests.conftest import NodeHandle
from tests.support.admin_client import PASSWORD, AdminClient

UPSTREAM = '[[upstreams]]\nname = "u"\nbase_url = "https://u.example/v1"\n'
MODEL = '[[models]]\nid = "m"\n'
PRICES = [
    ("models.0.input_usd_per_mtok", MODEL + "input_usd_per_mtok = {}\n"),
    ("models.0.output_usd_per_mtok", MODEL + "output_usd_per_mtok = {}\n"),
    ("models.0.image_output_usd", MODEL + "image_output_usd = {}\n"),
    ("models.0.audio_usd_per_minute", MODEL + "audio_usd_per_minute = {}\n"),
    ("upstreams.0.default_input_usd_per_mtok", UPSTREAM + "default_input_usd_per_mtok = {}\n"),
    ("upstreams.0.default_output_usd_per_mtok", UPSTREAM + "default_output_usd_per_mtok = {}\n"),
]
PRICE_IDS = [field.split(".")[-1] for field, _ in PRICES]


def load(tmp_path: Path, toml: str) -> Any:
    path = tmp_path / "nutgate.toml"
    path.write_text(toml)
    return load_settings(path)


def refused(tmp_path: Path, toml: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, toml)
    return str(caught.value)


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ("[pricing]\nmarkup = inf\n", "pricing.markup"),
        ("[pricing]\nbtc_usd = inf\n", "pricing.btc_usd"),
        ("[pricing]\nbtc_usd = nan\n", "pricing.btc_usd"),
        ("[cashu]\nmint_timeout_s = inf\n", "cashu.mint_timeout_s"),
        ("[limits]\nbody_timeout_s = inf\n", "limits.body_timeout_s"),
        (UPSTREAM + "idle_timeout_s = inf\n", "upstreams.0.idle_timeout_s"),
        (MODEL + "input_usd_per_mtok = inf\n", "models.0.input_usd_per_mtok"),
        (MODEL + "output_usd_per_mtok = inf\n", "models.0.output_usd_per_mtok"),
        (
            '[[presets]]\nname = "p"\nmodel = "m"\nparams = {temperature = nan}\n',
            "presets.0.params",
        ),
    ],
    ids=["markup", "btc_usd", "btc_nan", "mint", "limits", "upstream", "input", "output", "preset"],
)
def test_the_file_cannot_set_a_number_to_inf_or_nan(tmp_path: Path, toml: str, field: str) -> None:
    assert field in refused(tmp_path, toml)


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("NUTGATE_PRICING__BTC_USD", "nan", "pricing.btc_usd"),
        ("NUTGATE_PRICING__BTC_USD", "inf", "pricing.btc_usd"),
        ("NUTGATE_PRICING__MARKUP", "inf", "pricing.markup"),
        ("NUTGATE_LIMITS__HEADER_TIMEOUT_S", "Infinity", "limits.header_timeout_s"),
    ],
)
def test_the_environment_cannot_set_a_number_to_inf_or_nan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, field: str
) -> None:
    monkeypatch.setenv(name, value)
    assert field in refused(tmp_path, "")


@pytest.mark.parametrize(("field", "toml"), PRICES, ids=PRICE_IDS)
def test_a_price_above_a_million_usd_is_refused_naming_it(
    tmp_path: Path, field: str, toml: str
) -> None:
    for value in ("1e308", "1000000.01"):
        message = refused(tmp_path, toml.format(value))
        assert field in message and "1000000" in message


@pytest.mark.parametrize(("field", "toml"), PRICES, ids=PRICE_IDS)
def test_a_million_usd_is_still_a_price(tmp_path: Path, field: str, toml: str) -> None:
    load(tmp_path, toml.format("1000000"))


@pytest.fixture
def admin_node(make_node: Callable[..., NodeHandle]) -> NodeHandle:
    return make_node(node={"admin_password": PASSWORD})


async def estimate(node: NodeHandle) -> tuple[int, Any]:
    url = f"{node.url}/v1/estimate?model=test-model&input_tokens=1000"
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.json()


@pytest.mark.parametrize(
    ("method", "path", "body", "param"),
    [
        ("PATCH", "/admin/api/models/test-model", {"input_usd_per_mtok": 1e308}, "models.0."),
        ("POST", "/admin/api/models", {"id": "new", "image_output_usd": 1e7}, "models."),
        (
            "PATCH",
            "/admin/api/upstreams/mock",
            {"default_output_usd_per_mtok": 1e300},
            "upstreams.0.",
        ),
    ],
    ids=["model price", "new model image price", "upstream default price"],
)
async def test_the_admin_cannot_set_a_price_too_large_to_charge(
    admin_node: NodeHandle, method: str, path: str, body: dict[str, Any], param: str
) -> None:
    async with AdminClient(admin_node.url) as client:
        await client.login()
        before = await client.get("/admin/api/settings")
        status, answer, _ = await client.call(method, path, body)
        assert status == 400, answer
        assert answer["error"]["param"].startswith(param)
        assert answer["error"]["param"].endswith(next(iter(body.keys() - {"id"})))
        assert await client.get("/admin/api/settings") == before
    status, priced = await estimate(admin_node)  # the node still prices as it did
    assert status == 200 and priced["cost_msat"] == 1000


async def test_the_largest_price_still_estimates(make_node: Callable[..., NodeHandle]) -> None:
    price = {"input_usd_per_mtok": 1_000_000.0, "output_usd_per_mtok": 1_000_000.0}
    node = make_node(models=[{"id": "test-model", **price}])
    status, body = await estimate(node)
    # 1000 tokens at $1/token = $1000 = 0.01 BTC at $100 000/BTC = 10^9 msat
    assert status == 200 and body["cost_msat"] == 10**9
