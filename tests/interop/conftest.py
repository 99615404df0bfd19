"""Fixtures of the interop tests: wallets nobody here wrote (cashu-ts 4.x; Nutshell's wallet is
`ref_wallet` of tests/support/mints.py) paying a node that accepts the test mints."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import NodeHandle
from tests.support.cashu_ts import CashuTs, cashu_ts_or_skip
from tests.support.mints import MintInfo


@pytest.fixture(scope="session")
def cashu_ts() -> CashuTs:
    return cashu_ts_or_skip()


@pytest.fixture
def wallet_node(make_node: Callable[..., NodeHandle], mint: MintInfo) -> NodeHandle:
    """A node taking tokens of the plain test mint only."""
    return make_node(cashu={"mints": [mint.url]})


@pytest.fixture
def two_mint_node(
    make_node: Callable[..., NodeHandle], mint: MintInfo, fee_mint: MintInfo
) -> NodeHandle:
    """A node taking tokens of both test mints (the second one charges input fees)."""
    return make_node(cashu={"mints": [mint.url, fee_mint.url]})
