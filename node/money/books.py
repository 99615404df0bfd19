"""Where the wallet and the ledger meet: purposes, the wallet's hooks, the earnings cap.

The wallet moves proofs; the ledger moves msat. The hooks below run inside the wallet's own
transactions, so a proof and the balance it backs change together. Each movement has a
`purpose` string naming the account it belongs to ("topup:<account>:<token hash>",
"withdraw:<account>:<key>", "change:<account>:<request id>", "earnings:<key>", …); the wallet
keeps it with the pending swap or payout, so one finished after a crash moves the right
account exactly once.

Whoever moves the money pays its fees: a payout's debit is its amount plus the mint's fee on
the node's swap for it (`debit(conn, purpose, amount_msat, fee_msat)`), taken from the account
paid out of, or for the operator's earnings from what the node owns beyond its debts.

Earnings — what the operator may take — are the *unspent* proofs minus the liabilities: proofs
reserved by a payout in flight are already promised to someone (`earnings_cap`).
"""

from __future__ import annotations

import wallet as cashu
from node.errors import BadRequest, Conflict
from node.money.ledger import DEPOSIT, REFUND, WITHDRAW, Ledger
from wallet.store import Connection

EARNINGS = "earnings"  # the operator's payouts: not an account, capped by `earnings_cap`


def purpose(kind: str, *parts: str | int) -> str:
    return ":".join([kind, *map(str, parts)])


def _parse(text: str) -> tuple[str, list[str]]:
    kind, *parts = text.split(":")
    return kind, parts


def sat(msat: int) -> str:
    """msat as sat for a message: whole sats plain, else with its decimals."""
    return str(msat // 1000) if msat % 1000 == 0 else f"{msat / 1000:.3f}"


def earnings_cap(ledger: Ledger, conn: Connection) -> int:
    """msat the operator may take now, the payout's own fee included: the unspent proofs less
    what the node owes its clients. Runs inside the wallet's payout transaction."""
    return max(0, cashu.unspent_msat(conn) - ledger.liabilities_msat(conn))


def earnings_msat(ledger: Ledger) -> int:
    """The earnings cap as the payout hook will enforce it, read in a transaction of its own."""
    with ledger.db.transaction() as conn:
        return earnings_cap(ledger, conn)


class LedgerHooks:
    """The wallet's credit/debit/refund hooks, applying movements to ledger accounts.

    An "earnings:…" payout touches no account; `earnings_cap` (assets − liabilities, in the
    wallet's own transaction) refuses one whose amount plus fee is more than the node owns
    beyond its debts.
    """

    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    def credit(self, conn: Connection, what: str, amount_msat: int, mint: str) -> None:
        kind, parts = _parse(what)
        if kind in ("token", "oneshot", "create"):  # a new account keyed by a hash
            account_kind = {"token": "token", "oneshot": "oneshot", "create": "key"}[kind]
            account_id = self.ledger.create_account(conn, parts[0], account_kind, mint)
        elif kind == "topup":
            account_id = int(parts[0])
        else:
            raise ValueError(f"unknown credit purpose {kind!r}")
        self.ledger.credit(conn, account_id, amount_msat, DEPOSIT, what)

    def debit(self, conn: Connection, what: str, amount_msat: int, fee_msat: int) -> None:
        if fee_msat > amount_msat:
            raise BadRequest(
                f"paying out {sat(amount_msat)} sat would cost {sat(fee_msat)} sat in mint fees, "
                "more than the amount: ask for a larger amount (nothing was taken)",
                code="fees_exceed_amount",
                param="amount",
            )
        if _parse(what)[0] == EARNINGS:
            cap = earnings_cap(self.ledger, conn)
            if amount_msat + fee_msat > cap:
                fee = f" plus the mint's fee of {sat(fee_msat)} sat" if fee_msat else ""
                raise Conflict(
                    f"{sat(amount_msat)} sat{fee} is more than the node's earnings "
                    f"({sat(cap)} sat)",
                    code="exceeds_earnings",
                    param="amount",
                )
            return
        self.ledger.debit(conn, _account_of(what), amount_msat, WITHDRAW, what, fee_msat)

    def refund(self, conn: Connection, what: str, amount_msat: int) -> None:
        if _parse(what)[0] == EARNINGS:
            return  # the proofs came back to the wallet; no account was debited
        self.ledger.credit(conn, _account_of(what), amount_msat, REFUND, what)


def _account_of(what: str) -> int:
    kind, parts = _parse(what)
    if kind not in ("withdraw", "change"):
        raise ValueError(f"unknown payout purpose {kind!r}")
    return int(parts[0])
