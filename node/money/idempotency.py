"""One Idempotency-Key names one request (as Stripe's keys and the IETF Idempotency-Key draft
do): a retry of the same request gets the first answer again; the same key sent with another
request is refused (422, nothing taken) rather than answered with the first payout as though
the new one had been made.

What is compared is what the payout recorded: its amount, its mint and, for a Lightning
payment, the invoice. A part the request left out matches whatever the first payout chose
(an omitted `amount` is "the most the balance pays", an omitted `mint` the node's choice), and
a Lightning address is not recorded, only the invoice it gave and that invoice's amount.
"""

from __future__ import annotations

import wallet as cashu
from node.errors import Unprocessable
from wallet.mint_client import normalize_url


def key_mismatch(what: str) -> Unprocessable:
    return Unprocessable(
        f"this Idempotency-Key already named a request with another {what}; a retry must send "
        "the same request: send a new key for a new one (nothing was taken)",
        code="idempotency_key_mismatch",
        param="Idempotency-Key",
    )


def _same_mint(asked: str | None, used: str) -> bool:
    return asked is None or normalize_url(asked) == normalize_url(used)


def check_payout(paid: cashu.PaidOut, sats: int | None, mint: str | None) -> cashu.PaidOut:
    """The earlier token payout under this key, if it is the one asked for now."""
    if sats is not None and sats != paid.amount_sat:
        raise key_mismatch("amount")
    if not _same_mint(mint, paid.mint):
        raise key_mismatch("mint")
    return paid


def check_melt(
    melted: cashu.Melted, bolt11: str | None, sats: int | None, mint: str | None
) -> cashu.Melted:
    """The earlier Lightning payment under this key, if it is the one asked for now: the same
    invoice (`bolt11`), or the same amount (`sats`, to an address), at the same mint."""
    if bolt11 is not None and _invoice_text(bolt11) != melted.request:
        raise key_mismatch("invoice")
    if sats is not None and sats != melted.amount_sat:
        raise key_mismatch("amount")
    if not _same_mint(mint, melted.mint):
        raise key_mismatch("mint")
    return melted


def _invoice_text(bolt11: str) -> str:
    """The invoice as the wallet stores it (lowercase, without a `lightning:` prefix)."""
    try:
        return cashu.decode_bolt11(bolt11).bolt11
    except cashu.TokenInvalid:
        return ""  # no stored invoice reads so: another request
