"""Money seen from outside, for the tests: HTTP calls with a payer, the admin's NUT-07 audit,
and tokens merged as a client would before redeeming them in one swap.

    status, headers, body = await call(node, "POST", "/v1/wallet/withdraw", key, json={...})
    report = await admin_audit(node)   # needs node={"admin_password": PASSWORD}
    assert_proofs_cover(node)          # its unspent proofs cover its balances (database)
    one = merge_tokens([t1, t2, t3])   # one token of every proof (same mint)
"""

from __future__ import annotations

from typing import Any

import aiohttp

import wallet as cashu
from tests.support.admin_client import AdminClient

TIMEOUT = aiohttp.ClientTimeout(total=45)  # far above any answer the node gives


async def call(
    node: Any,
    method: str,
    path: str,
    key: str | None = None,
    *,
    x_cashu: str | None = None,
    headers: dict[str, str] | None = None,
    json: Any = None,
    timeout: aiohttp.ClientTimeout = TIMEOUT,
) -> tuple[int, Any, Any]:
    """(status, headers, JSON body) of one request; `key` as Bearer, `x_cashu` as X-Cashu."""
    sent = dict(headers or {})
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    if x_cashu is not None:
        sent["X-Cashu"] = x_cashu
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.request(method, node.url + path, headers=sent, json=json) as resp,
    ):
        text = await resp.text()
        body = await resp.json(content_type=None) if text else None
        return resp.status, resp.headers, body


async def admin_audit(node: Any) -> dict[str, Any]:
    """The admin's audit: the ledger's check plus every proof's state at its mint (NUT-07)."""
    async with AdminClient(node.url) as client:
        status, _ = await client.login()
        assert status == 200, "the node needs node={'admin_password': PASSWORD}"
        report: dict[str, Any] = await client.get("/admin/api/audit")
    return report


def assert_solvent(report: dict[str, Any]) -> None:
    """Verified assets (proofs the mint calls unspent) cover what the node must pay."""
    assert report["ledger_ok"], report["mismatches"]
    assert not report["spent_behind_our_back"], report["spent_behind_our_back"]
    assert report["verified_assets_msat"] >= report["liabilities_msat"], report
    assert report["solvent"] is True, report


def assert_proofs_cover(node: Any) -> None:
    """The unspent proofs the node holds (its database) cover every balance it owes; clean."""
    held = node.db.query_one(
        "SELECT COALESCE(SUM(amount), 0) FROM wallet_proofs WHERE state = 'unspent'"
    )[0]
    owed = node.db.query_one("SELECT COALESCE(SUM(balance_msat), 0) FROM accounts")[0]
    assert held * 1000 >= owed, (held, owed)
    node.assert_clean()


def merge_tokens(tokens: list[str]) -> str:
    """Every proof of `tokens` (one mint) in one token: redeemed in one swap, one fee."""
    parsed = [cashu.parse_token(t) for t in tokens]
    mints = {t.mint for t in parsed}
    assert len(mints) == 1, mints
    proofs = [p for t in parsed for p in t.proofs]
    return cashu.serialize_v4(cashu.Token(mint=mints.pop(), proofs=proofs, unit="sat"))
