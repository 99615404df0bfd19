"""The node's money seen by its operator: accounts, solvency, the audit, earnings payouts.

Liabilities are what the node must pay if every client withdrew: the balances less operator
credit (granted by `nutgate keys create`, spend-only, never paid out); assets are the proofs
the wallet holds. Earnings — what the operator may take — are the *unspent* proofs minus the
liabilities: proofs reserved by a payout in flight are already promised to someone. An earnings
payout pays its own mint fee out of them, as any payout does.

Remainders are the part of the liabilities that cannot leave as ecash (see
node.money.ledger_reports). The figures come from the ledger and the wallet, which own their
tables; nothing here reads them with SQL of its own.
"""

from __future__ import annotations

from typing import Any

import wallet as cashu
from node.admin import tables
from node.errors import BadRequest, NotFound
from node.money.books import EARNINGS, earnings_msat, purpose
from node.money.idempotency import check_payout
from node.money.payments import wallet_errors
from node.parts import Parts
from node.routes.payouts import melt_json, payout_json

MAX_PAGE = 500
PAYOUTS_SHOWN = 50


def accounts(parts: Parts, limit: int, offset: int) -> dict[str, Any]:
    page = parts.ledger.accounts_page(max(1, min(limit, MAX_PAGE)), max(0, offset))
    total = parts.ledger.totals()
    return {
        "accounts": page,
        "totals": {
            "accounts": total["accounts"],
            "balance_msat": total["balance_msat"],
            "reserved_msat": total["reserved_msat"],
            "credit_msat": total["credit_msat"],
            "ecash_balance_msat": total["balance_msat"] - total["credit_msat"],
            "remainders_msat": total["remainders_msat"],
            "requests": total["requests"],
        },
    }


def entries(parts: Parts, account_id: int, limit: int) -> dict[str, Any]:
    account = parts.ledger.account_row(account_id)
    if account is None:
        raise NotFound(f"no account {account_id}", code="account_not_found")
    rows = parts.ledger.entries_page(account_id, max(1, min(limit, MAX_PAGE)))
    return {"account": account, "entries": [_entry(row) for row in rows]}


def _entry(entry: dict[str, Any]) -> dict[str, Any]:
    ref = str(entry.pop("ref") or "")
    # refs name purposes ("token:<key hash>", a reservation id): show the kind, not the hash
    entry["ref"] = ref.split(":", 1)[0] if ":" in ref else ref
    return entry


def solvency(parts: Parts) -> dict[str, Any]:
    assets = parts.wallet.assets_msat()
    liabilities = parts.ledger.liabilities_msat()
    total = sum(assets.values())
    withdrawable = earnings_msat(parts.ledger)  # the same figure the payout hook will enforce
    owed = parts.ledger.totals()
    return {
        "assets_msat": assets,
        "assets_total_msat": total,
        "liabilities_msat": liabilities,  # ecash-backed balances: what must be paid
        "credit_msat": owed["credit_msat"],  # operator credit: spend-only, not owed as ecash
        "remainders_msat": owed["remainders_msat"],  # owed, but below what ecash can pay out
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
    payout's token (settled if left in doubt); the key sent with another amount or mint, a
    422."""
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
    assert paid is not None  # the first payout under this key, or a racing retry's
    return payout_json(check_payout(paid, *_asked(amount, mint)))


async def earnings_to_lightning(parts: Parts, body: dict[str, Any], key: str) -> dict[str, Any]:
    """`invoice`, or `lightning_address` with `amount` (sat): the earnings paid by Lightning,
    the fees within the earnings too (the payout hook's cap)."""
    invoice, address, mint = body.get("invoice"), body.get("lightning_address"), body.get("mint")
    if invoice is not None and not isinstance(invoice, str):
        raise BadRequest("invoice must be a bolt11 invoice (lnbc…)", param="invoice")
    sats = 0
    if invoice is None:
        if not isinstance(address, str):
            raise BadRequest("lightning_address must be name@host", param="lightning_address")
        earlier = parts.wallet.melted(purpose(EARNINGS, key))
        if earlier is not None and earlier.state != "failed":  # a retry: the first one back,
            sats = _asked(body.get("amount"), mint)[0] or 0  # whatever it left of the earnings
        else:
            sats = _earnings_amount(parts, body.get("amount"), mint) or 0
        if not sats:
            raise BadRequest("amount (sat) is required with lightning_address", param="amount")
    elif mint is not None and not isinstance(mint, str):
        raise BadRequest("mint must be a mint URL", param="mint")
    melted = await parts.lightning.pay_earnings(invoice, address, sats, key, mint)
    return melt_json(melted)


def _asked(amount: Any, mint: Any) -> tuple[int | None, str | None]:
    """The amount (sat) and mint asked for, if any; a 400 for one of the wrong kind."""
    if mint is not None and not isinstance(mint, str):
        raise BadRequest("mint must be a mint URL", param="mint")
    if amount is not None and (
        not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0
    ):
        raise BadRequest("amount must be a positive whole number of sat", param="amount")
    return amount, mint


def _earnings_amount(parts: Parts, asked: Any, mint: Any) -> int | None:
    amount, _ = _asked(asked, mint)
    available = solvency(parts)["withdrawable_sat"]
    if amount is None:
        if available <= 0:
            raise BadRequest(
                "there are no earnings to withdraw", param="amount", code="exceeds_earnings"
            )
        return None
    if amount > available:
        raise BadRequest(
            f"{amount} sat is more than the earnings available ({available} sat)",
            param="amount",
            code="exceeds_earnings",
        )
    return amount


def payouts(parts: Parts) -> list[dict[str, Any]]:
    """The latest earnings payouts; a finished one's token until the operator marks it
    collected (so a token shown once and lost with the page is not lost with it)."""
    collected = tables.collected(parts.db)
    shown = []
    for row in parts.wallet.payouts(purpose(EARNINGS, ""), PAYOUTS_SHOWN, tokens=True):
        token = row.pop("token", None)
        row["collected"] = row["id"] in collected
        if row["state"] == "done" and not row["collected"] and token:
            row["cashu_token"] = token
        shown.append(row)
    return shown


def mark_collected(parts: Parts, payout_id: int) -> None:
    """The operator has the token of this earnings payout: stop showing it."""
    done = [p for p in payouts(parts) if p["id"] == payout_id and p["state"] == "done"]
    if not done:
        raise NotFound("no finished earnings payout with this id", code="payout_not_found")
    tables.mark_collected(parts.db, payout_id)
