"""The node's money seen by its operator: accounts, solvency, the audit, earnings payouts.

Liabilities are what the accounts own (the sum of their balances); assets are the proofs the
wallet holds. Earnings — what the operator may take — are the *unspent* proofs minus the
liabilities: proofs reserved by a payout in flight are already promised to someone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import wallet as cashu
from node.errors import BadRequest, NotFound
from node.payments import EARNINGS, purpose, wallet_errors
from node.routes.wallet import token_json
from wallet.store import Connection, Row

if TYPE_CHECKING:
    from node.context import Node

ACCOUNT_COLUMNS = "id, kind, mint, balance_msat, reserved_msat, created_at, last_used_at, requests"
MAX_PAGE = 500


def earnings_cap(conn: Connection) -> int:
    """msat the operator may withdraw now; runs inside the wallet's payout transaction."""
    assets = conn.execute(
        "SELECT COALESCE(SUM(amount), 0) * 1000 FROM wallet_proofs WHERE state = 'unspent'"
    ).fetchone()[0]
    debts = conn.execute("SELECT COALESCE(SUM(balance_msat), 0) FROM accounts").fetchone()[0]
    return max(0, int(assets) - int(debts) - payout_fees_msat(conn))


def payout_fees_msat(conn: Connection) -> int:
    """The most mint fees (NUT-02) one payout can cost: the node pays them from its proofs, on
    top of the amount, so they must come out of the earnings, not out of what accounts own.
    Bound per mint: every held proof as an input, plus the receiver's fee on one output a bit."""
    rows = conn.execute(
        "SELECT p.mint, SUM(k.input_fee_ppk) AS ppk_in, SUM(p.amount) AS held,"
        " (SELECT MAX(input_fee_ppk) FROM wallet_keysets WHERE mint = p.mint) AS ppk_out"
        " FROM wallet_proofs p JOIN wallet_keysets k ON k.id = p.keyset_id"
        " WHERE p.state = 'unspent' GROUP BY p.mint"
    ).fetchall()
    worst = 0
    for row in rows:
        outputs = int(row["held"]).bit_length()
        fee = -(-int(row["ppk_in"]) // 1000) - (-int(row["ppk_out"] or 0) * outputs // 1000)
        worst = max(worst, fee)
    return worst * 1000


def accounts(node: Node, limit: int, offset: int) -> dict[str, Any]:
    limit = max(1, min(limit, MAX_PAGE))
    rows = node.db.query(
        f"SELECT {ACCOUNT_COLUMNS} FROM accounts"
        " ORDER BY last_used_at IS NULL, last_used_at DESC, id DESC LIMIT ? OFFSET ?",
        (limit, max(0, offset)),
    )
    total = node.db.query_one(
        "SELECT count(*) AS n, COALESCE(SUM(balance_msat), 0) AS balance,"
        " COALESCE(SUM(reserved_msat), 0) AS reserved, COALESCE(SUM(requests), 0) AS requests"
        " FROM accounts"
    )
    assert total is not None
    return {
        "accounts": [dict(row) for row in rows],
        "totals": {
            "accounts": total["n"],
            "balance_msat": total["balance"],
            "reserved_msat": total["reserved"],
            "requests": total["requests"],
        },
    }


def entries(node: Node, account_id: int, limit: int) -> dict[str, Any]:
    account = node.db.query_one(
        f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account_id,)
    )
    if account is None:
        raise NotFound(f"no account {account_id}", code="account_not_found")
    rows = node.db.query(
        "SELECT id, kind, amount_msat, ref, created_at FROM entries WHERE account_id = ?"
        " ORDER BY id DESC LIMIT ?",
        (account_id, max(1, min(limit, MAX_PAGE))),
    )
    return {"account": dict(account), "entries": [_entry(row) for row in rows]}


def _entry(row: Row) -> dict[str, Any]:
    entry = dict(row)
    ref = str(entry.pop("ref") or "")
    # refs name purposes ("token:<key hash>", a reservation id): show the kind, not the hash
    entry["ref"] = ref.split(":", 1)[0] if ":" in ref else ref
    return entry


def solvency(node: Node) -> dict[str, Any]:
    assets = node.wallet.assets_msat()
    liabilities = node.ledger.liabilities_msat()
    total = sum(assets.values())
    with node.db.transaction() as conn:  # the same figure the payout hook will enforce
        withdrawable = earnings_cap(conn)
    return {
        "assets_msat": assets,
        "assets_total_msat": total,
        "liabilities_msat": liabilities,
        "earnings_msat": total - liabilities,
        "withdrawable_sat": withdrawable // 1000,
        "solvent": total >= liabilities,
    }


async def audit(node: Node) -> dict[str, Any]:
    """The ledger's own check, plus every held proof's state at its mint (NUT-07)."""
    mismatches = node.ledger.audit()
    with wallet_errors():
        states = await node.wallet.check_states()
    spent = [s for s in states if s.remote == "SPENT"]
    unknown = [s for s in states if s.remote not in ("UNSPENT", "SPENT", "PENDING")]
    lost_msat = sum(s.amount for s in spent) * 1000
    report = solvency(node)
    verified = report["assets_total_msat"] - lost_msat
    return {
        **report,
        "ledger_ok": not mismatches,
        "mismatches": [m.__dict__ for m in mismatches],
        "proofs_checked": len(states),
        "spent_behind_our_back": [_proof_json(s) for s in spent],
        "unknown": [_proof_json(s) for s in unknown],
        "pending": sum(1 for s in states if s.remote == "PENDING"),
        "verified_assets_msat": verified,
        "solvent": verified >= report["liabilities_msat"] and not mismatches,
    }


def _proof_json(state: cashu.ProofState) -> dict[str, Any]:
    return {
        "mint": state.mint,
        "keyset_id": state.keyset_id,
        "amount": state.amount,
        "y": state.y,
        "local": state.local,
        "remote": state.remote,
    }


async def withdraw_earnings(node: Node, amount: Any, mint: Any, key: str) -> dict[str, Any]:
    """Pay the operator `amount` sat (default: all of it) as a token, never beyond earnings.
    Idempotent per `key`: a retry gets the first payout's token (settled if left in doubt)."""
    what = purpose(EARNINGS, key)
    with wallet_errors():
        done = await node.wallet.settle_payout(what)  # before the checks: earnings shrank since
        if done is None:
            done = await node.wallet.send(_earnings_amount(node, amount, mint), what, mint)
    # the sat asked for: at a fee mint the token also carries the receiver's swap fee
    row = node.db.query_one(
        "SELECT amount_sat FROM wallet_payouts WHERE purpose = ? AND state = 'done'", (what,)
    )
    assert row is not None
    return {**token_json(done), "amount": row["amount_sat"]}


def _earnings_amount(node: Node, amount: Any, mint: Any) -> int:
    available = solvency(node)["withdrawable_sat"]
    if amount is None:
        amount = available
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise BadRequest("amount must be a positive whole number of sat", param="amount")
    if mint is not None and not isinstance(mint, str):
        raise BadRequest("mint must be a mint URL", param="mint")
    if amount > available:
        raise BadRequest(
            f"{amount} sat is more than the earnings available ({available} sat)",
            param="amount",
            code="exceeds_earnings",
        )
    return amount


def payouts(node: Node) -> list[dict[str, Any]]:
    rows = node.db.query(
        "SELECT id, mint, amount_sat, state, fee_sat, created_at FROM wallet_payouts"
        " WHERE purpose LIKE ? ORDER BY id DESC LIMIT 50",
        (f"{EARNINGS}:%",),
    )
    return [dict(row) for row in rows]
