"""The node's money seen by its operator: accounts, solvency, the audit, earnings payouts.

Liabilities are what the node must pay if every client withdrew: the balances less operator
credit (granted by `nutgate keys create`, spend-only, never paid out); assets are the proofs
the wallet holds. Earnings — what the operator may take — are the *unspent* proofs minus the
liabilities: proofs reserved by a payout in flight are already promised to someone. An earnings
payout pays its own mint fee out of them, as any payout does.

Remainders are the part of the liabilities that cannot leave as ecash: each account's msat
below a whole sat, and what X-Cashu payments left in their one-shot accounts (too little to
pay back beside a payout's fee, or change not collected yet). They stay owed (the token still
pays for requests and the change listing shows them), so they count in the liabilities.
"""

from __future__ import annotations

from typing import Any

import wallet as cashu
from node.errors import BadRequest, NotFound
from node.money.books import EARNINGS, earnings_msat, purpose
from node.money.payments import wallet_errors
from node.parts import Parts
from node.routes.wallet import payout_json
from wallet.store import Row

ACCOUNT_COLUMNS = (
    "id, kind, mint, balance_msat, reserved_msat, credit_msat, created_at, last_used_at, requests"
)
MAX_PAGE = 500
# owed, yet not payable as ecash: see the module's docstring
REMAINDERS = (
    "COALESCE(SUM(CASE WHEN kind = 'oneshot' THEN balance_msat - credit_msat"
    " ELSE (balance_msat - credit_msat) % 1000 END), 0)"
)


def accounts(parts: Parts, limit: int, offset: int) -> dict[str, Any]:
    limit = max(1, min(limit, MAX_PAGE))
    rows = parts.db.query(
        f"SELECT {ACCOUNT_COLUMNS} FROM accounts"
        " ORDER BY last_used_at IS NULL, last_used_at DESC, id DESC LIMIT ? OFFSET ?",
        (limit, max(0, offset)),
    )
    total = parts.db.query_one(
        "SELECT count(*) AS n, COALESCE(SUM(balance_msat), 0) AS balance,"
        " COALESCE(SUM(reserved_msat), 0) AS reserved, COALESCE(SUM(credit_msat), 0) AS credit,"
        f" {REMAINDERS} AS remainders, COALESCE(SUM(requests), 0) AS requests FROM accounts"
    )
    assert total is not None
    return {
        "accounts": [dict(row) for row in rows],
        "totals": {
            "accounts": total["n"],
            "balance_msat": total["balance"],
            "reserved_msat": total["reserved"],
            "credit_msat": total["credit"],
            "ecash_balance_msat": total["balance"] - total["credit"],
            "remainders_msat": total["remainders"],
            "requests": total["requests"],
        },
    }


def entries(parts: Parts, account_id: int, limit: int) -> dict[str, Any]:
    account = parts.db.query_one(
        f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account_id,)
    )
    if account is None:
        raise NotFound(f"no account {account_id}", code="account_not_found")
    rows = parts.db.query(
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


def solvency(parts: Parts) -> dict[str, Any]:
    assets = parts.wallet.assets_msat()
    liabilities = parts.ledger.liabilities_msat()
    total = sum(assets.values())
    withdrawable = earnings_msat(parts.ledger)  # the same figure the payout hook will enforce
    owed = parts.db.query_one(
        f"SELECT COALESCE(SUM(credit_msat), 0) AS credit, {REMAINDERS} AS remainders FROM accounts"
    )
    assert owed is not None
    return {
        "assets_msat": assets,
        "assets_total_msat": total,
        "liabilities_msat": liabilities,  # ecash-backed balances: what must be paid
        "credit_msat": owed["credit"],  # operator credit: spend-only, not owed as ecash
        "remainders_msat": owed["remainders"],  # owed, but below what ecash can pay out
        "earnings_msat": total - liabilities,
        "withdrawable_sat": withdrawable // 1000,  # the payout's own fee included
        "solvent": total >= liabilities,
    }


async def audit(parts: Parts) -> dict[str, Any]:
    """The ledger's own check, plus every held proof's state at its mint (NUT-07)."""
    mismatches = parts.ledger.audit()
    with wallet_errors():
        states = await parts.wallet.check_states()
    spent = [s for s in states if s.remote == "SPENT"]
    unknown = [s for s in states if s.remote not in ("UNSPENT", "SPENT", "PENDING")]
    lost_msat = sum(s.amount for s in spent) * 1000
    report = solvency(parts)
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


async def withdraw_earnings(parts: Parts, amount: Any, mint: Any, key: str) -> dict[str, Any]:
    """Pay the operator `amount` sat (default: the most the earnings pay once the payout's fee
    is in) as a token, never beyond earnings. Idempotent per `key`: a retry gets the first
    payout's token (settled if left in doubt)."""
    what = purpose(EARNINGS, key)
    with wallet_errors():
        await parts.wallet.settle_payout(what)  # before the checks: earnings shrank since
        if parts.wallet.paid(what) is None:
            sats = _earnings_amount(parts, amount, mint)
            if sats is None:
                await parts.wallet.send_up_to(earnings_msat(parts.ledger), what, mint)
            else:
                await parts.wallet.send(sats, what, mint)
    paid = parts.wallet.paid(what)
    assert paid is not None
    return payout_json(paid)


def _earnings_amount(parts: Parts, amount: Any, mint: Any) -> int | None:
    if mint is not None and not isinstance(mint, str):
        raise BadRequest("mint must be a mint URL", param="mint")
    available = solvency(parts)["withdrawable_sat"]
    if amount is None:
        if available <= 0:
            raise BadRequest(
                "there are no earnings to withdraw", param="amount", code="exceeds_earnings"
            )
        return None
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise BadRequest("amount must be a positive whole number of sat", param="amount")
    if amount > available:
        raise BadRequest(
            f"{amount} sat is more than the earnings available ({available} sat)",
            param="amount",
            code="exceeds_earnings",
        )
    return amount


def payouts(parts: Parts) -> list[dict[str, Any]]:
    rows = parts.db.query(
        "SELECT id, mint, amount_sat, state, fee_sat, created_at FROM wallet_payouts"
        " WHERE purpose LIKE ? ORDER BY id DESC LIMIT 50",
        (f"{EARNINGS}:%",),
    )
    return [dict(row) for row in rows]
