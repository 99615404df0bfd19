"""Fixtures of the interop tests: wallets nobody here wrote (cashu-ts 4.x; Nutshell's wallet is
`ref_wallet` of tests/support/mints.py) paying a node that accepts the test mints."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.conftest import NodeHandle
from tests.support.cashu_ts import CashuTs, cashu_ts_or_skip
from tests.support.logcheck import Recorder
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


@pytest.fixture
def forgive_header_echo(log_recorder: Recorder) -> Iterator[None]:
    """Drop aiohttp's record of a header over its 8190-byte limit, which echoes the header's
    first bytes (a token) into the log. That leak is issue 20 point 9, not what these tests check;
    without this, the xfail cases of issue 22 point 3 would fail in teardown instead. Any other
    record still goes through the secrets check."""
    start = len(log_recorder.lines)
    yield
    log_recorder.lines[start:] = [
        line for line in log_recorder.lines[start:] if not _oversized_header_echo(line)
    ]


def _oversized_header_echo(line: str) -> bool:
    return '"logger":"aiohttp.server"' in line and "Got more than 8190 bytes" in line
