"""What the ledger's tables tell its readers: the audit, liabilities, totals, pages, series.

Read-only queries over accounts, entries and reservations, for the admin's money and stats
pages, the metrics, `nutgate audit`, and the payments' look at a one-shot account's spender
and an account's payouts; `Ledger` (ledger.py) inherits them, so the ledger's
tables are read and written by the ledger's two modules alone.

Remainders are the part of the liabilities that cannot leave as ecash: each account's msat
below a whole sat, and what X-Cashu payments left in their one-shot accounts (too little to
pay back beside a payout's fee, or change not collected yet). They stay owed (the token still
pays for requests and the change listing shows them), so they count in the liabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.db.store import Store
from node.money.accounts import Cap, Mismatch
from node.money.ledger_schema import CHARGE, WITHDRAW
from wallet.store import Connection

ACCOUNT_COLUMNS = (
    "id, kind, mint, balance_msat, reserved_msat, credit_msat, created_at, last_used_at, requests"
)
# owed, yet not payable as ecash: see the module's docstring
REMAINDERS = (
    "COALESCE(SUM(CASE WHEN kind = 'oneshot' THEN balance_msat - credit_msat"
    " ELSE (balance_msat - credit_msat) % 1000 END), 0)"
)
# what a key spent since a time (and after an entry: a reset), and holds now: a sub-key's own
# requests (key_id), or every request paid from a key's account (account_id)
KEY_SPENT, ACCOUNT_SPENT = (
    "SELECT (SELECT COALESCE(SUM(-amount_msat), 0) FROM entries"
    f" WHERE {column} = :k AND kind = 'charge' AND created_at >= :since AND id > :after)"
    f" + (SELECT COALESCE(SUM(amount_msat), 0) FROM reservations WHERE {column} = :k)"
    for column in ("key_id", "account_id")
)


def spent_sql(cap: Cap) -> tuple[str, dict[str, int]]:
    """The query of what a cap counts, and its parameters."""
    params = {"k": cap.key_id, "since": cap.since, "after": cap.after_entry}
    return (ACCOUNT_SPENT if cap.whole_account else KEY_SPENT), params


_LIABILITIES = "SELECT COALESCE(SUM(balance_msat - credit_msat), 0) FROM accounts"


@dataclass(frozen=True)
class Balances:
    """All accounts together, for the metrics."""

    accounts: int
    owed_msat: int  # balances less operator credit: what the node owes as ecash
    reserved_msat: int
    credit_msat: int


class LedgerReports:
    db: Store

    def audit(self) -> list[Mismatch]:
        """Recompute every balance from its entries; list the accounts that disagree, whose
        reservations do not add up, or whose operator credit is outside 0..balance."""
        rows = self.db.query(
            "SELECT a.id, a.balance_msat, COALESCE(SUM(e.amount_msat), 0) AS total"
            " FROM accounts a LEFT JOIN entries e ON e.account_id = a.id"
            " GROUP BY a.id HAVING a.balance_msat != COALESCE(SUM(e.amount_msat), 0)"
        )
        mismatches = [Mismatch(r["id"], r["balance_msat"], r["total"]) for r in rows]
        held = self.db.query(
            "SELECT a.id, a.reserved_msat, COALESCE(SUM(r.amount_msat), 0) AS held"
            " FROM accounts a LEFT JOIN reservations r ON r.account_id = a.id"
            " GROUP BY a.id HAVING a.reserved_msat != COALESCE(SUM(r.amount_msat), 0)"
        )
        mismatches += [Mismatch(r["id"], r["reserved_msat"], r["held"], "reserved") for r in held]
        credit = self.db.query(
            "SELECT id, balance_msat, credit_msat FROM accounts"
            " WHERE credit_msat < 0 OR credit_msat > balance_msat"
        )
        mismatches += [
            Mismatch(r["id"], r["balance_msat"], r["credit_msat"], "credit") for r in credit
        ]
        return mismatches

    def liabilities_msat(self, conn: Connection | None = None) -> int:
        """What the node must pay if every client withdrew: balances less operator credit
        (inside `conn`, a transaction of the caller's, when given)."""
        row = conn.execute(_LIABILITIES).fetchone() if conn else self.db.query_one(_LIABILITIES)
        return int(row[0]) if row else 0

    def open_reservations(self) -> int:
        row = self.db.query_one("SELECT count(*) FROM reservations")
        return int(row[0]) if row else 0

    def balances(self) -> Balances:
        row = self.db.query_one(
            "SELECT count(*), COALESCE(SUM(balance_msat - credit_msat), 0),"
            " COALESCE(SUM(reserved_msat), 0), COALESCE(SUM(credit_msat), 0) FROM accounts"
        )
        return Balances(*(int(v) for v in row)) if row else Balances(0, 0, 0, 0)

    def totals(self) -> dict[str, int]:
        """Sums over every account: count, balance, reserved, credit, remainders, requests."""
        row = self.db.query_one(
            "SELECT count(*) AS accounts, COALESCE(SUM(balance_msat), 0) AS balance_msat,"
            " COALESCE(SUM(reserved_msat), 0) AS reserved_msat,"
            " COALESCE(SUM(credit_msat), 0) AS credit_msat,"
            f" {REMAINDERS} AS remainders_msat, COALESCE(SUM(requests), 0) AS requests"
            " FROM accounts"
        )
        assert row is not None
        return {name: int(value) for name, value in dict(row).items()}

    def accounts_page(self, limit: int, offset: int) -> list[dict[str, Any]]:
        """Accounts, the last used first (never used last)."""
        rows = self.db.query(
            f"SELECT {ACCOUNT_COLUMNS} FROM accounts"
            " ORDER BY last_used_at IS NULL, last_used_at DESC, id DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [dict(row) for row in rows]

    def account_row(self, account_id: int) -> dict[str, Any] | None:
        row = self.db.query_one(
            f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account_id,)
        )
        return None if row is None else dict(row)

    def entries_page(self, account_id: int, limit: int) -> list[dict[str, Any]]:
        """An account's entries, the newest first."""
        rows = self.db.query(
            "SELECT id, kind, amount_msat, ref, created_at FROM entries WHERE account_id = ?"
            " ORDER BY id DESC LIMIT ?",
            (account_id, limit),
        )
        return [dict(row) for row in rows]

    def cap_spent(self, cap: Cap) -> int:
        """What a cap counts now: charged since its start, and held."""
        row = self.db.query_one(*spent_sql(cap))
        return int(row[0]) if row else 0

    def last_entry(self, conn: Connection) -> int:
        """The id of the latest entry (a key's reset counts its charges from the next)."""
        row = conn.execute("SELECT COALESCE(MAX(id), 0) FROM entries").fetchone()
        return int(row[0]) if row else 0

    def moves_page(self, account_id: int, limit: int) -> list[dict[str, Any]]:
        """An account's money in and out, charges aside, the newest first."""
        rows = self.db.query(
            "SELECT id, kind, amount_msat, ref, created_at FROM entries WHERE account_id = ?"
            " AND kind != ? ORDER BY id DESC LIMIT ?",
            (account_id, CHARGE, limit),
        )
        return [dict(row) for row in rows]

    def entry_series(self, start: int, end: int, bucket_s: int) -> tuple[int, dict[int, Any]]:
        """The sum of every entry before `start`, and per bucket of `bucket_s` from `start` to
        `end`: charges (requests), revenue (what they took) and the change of all balances."""
        before = self.db.query_one(
            "SELECT COALESCE(SUM(amount_msat), 0) FROM entries WHERE created_at < ?", (start,)
        )
        rows = self.db.query(
            "SELECT (created_at - :start) / :b AS i,"
            " SUM(CASE WHEN kind = :charge THEN 1 ELSE 0 END) AS requests,"
            " SUM(CASE WHEN kind = :charge THEN -amount_msat ELSE 0 END) AS revenue,"
            " SUM(amount_msat) AS delta"
            " FROM entries WHERE created_at >= :start AND created_at < :end GROUP BY i",
            {"start": start, "end": end, "b": bucket_s, "charge": CHARGE},
        )
        return (int(before[0]) if before else 0), {int(r["i"]): r for r in rows}

    # --- one-shot accounts and payouts ---------------------------------------------------

    def spender(self, account_id: int) -> tuple[str | None, str | None, bool]:
        """(the id of the request that spent a one-shot account, its Idempotency-Key hash,
        whether a request still holds a reservation on it)."""
        row = self.db.query_one(
            "SELECT request_id, idempotency_key,"
            " EXISTS (SELECT 1 FROM reservations r WHERE r.account_id = a.id) AS busy"
            " FROM accounts a WHERE a.id = ?",
            (account_id,),
        )
        if row is None:
            return None, None, False
        return row["request_id"], row["idempotency_key"], bool(row["busy"])

    def payout_refs(self, account_id: int, prefix: str) -> list[str]:
        """The purposes of the payouts debited from an account that start with `prefix`, oldest
        first (a failed one, refunded, may have been tried again under the same purpose)."""
        rows = self.db.query(
            "SELECT ref FROM entries WHERE account_id = ? AND kind = ? ORDER BY id",
            (account_id, WITHDRAW),
        )
        return list(dict.fromkeys(r["ref"] for r in rows if str(r["ref"]).startswith(prefix)))
