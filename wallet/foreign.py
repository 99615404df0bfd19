"""Tokens of mints outside the trust list, taken by Lightning (opt-in): the token's own mint
melts its proofs into an invoice of a trusted mint, and that invoice is credited as any other
(`wallet.invoices`). The node never holds ecash of an untrusted mint.

1. Ask the token's mint for its keysets (the input fee, NUT-02), a trusted mint for an invoice
   of the amount left once fees are out, and the token's mint for a melt quote of it (its fee
   reserve). If the reserve does not fit, ask again for a smaller invoice.
2. The fees (token value − amount credited) must be at most what the client accepted, else
   `ForeignFees` names them and nothing moves.
3. Store the invoice (its ref derived from the token: a retry finds it), then melt the token at
   its mint with no change outputs: the unused reserve is part of the fees quoted.
4. Settle the invoice: credited once paid, now or by the node's watcher later.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from wallet.core import WalletCore
from wallet.errors import (
    MintError,
    MintUnavailable,
    TokenInvalid,
    TokenSpent,
    UnsupportedUnit,
    WalletError,
)
from wallet.invoices import Invoice, Invoices
from wallet.mint_client import MintClient, MintQuote, normalize_url
from wallet.outputs import input_fee
from wallet.tokens import Token, parse_token

QUOTE_TRIES = 3


class ForeignFees(WalletError):
    """Redeeming the token by Lightning costs `fee_sat` of its `value_sat`; the client has not
    accepted that much (it may resend the token accepting it)."""

    def __init__(self, value_sat: int, fee_sat: int) -> None:
        super().__init__(
            f"this token's mint is not trusted by the node: it can be taken by Lightning for "
            f"{fee_sat} sat of its {value_sat} sat in fees ({value_sat - fee_sat} sat credited)"
        )
        self.value_sat, self.fee_sat = value_sat, fee_sat


@dataclass(frozen=True)
class _Plan:
    quote: MintQuote  # at the trusted mint
    melt_quote: str  # at the token's mint
    fee_sat: int


class Foreign(Invoices, WalletCore):
    def is_foreign(self, token: str) -> bool:
        try:
            mint = normalize_url(parse_token(token).mint)
        except TokenInvalid:
            return False
        return mint not in self._clients

    async def redeem_foreign(
        self, token: str, to_mint: str, ref: str, purpose: str, max_fee_sat: int
    ) -> Invoice:
        """Melt an untrusted mint's token into an invoice of `to_mint` credited to `purpose`,
        if the fees are at most `max_fee_sat`; a retry with the same token, `ref` and `purpose`
        finds the first attempt's invoice (TokenSpent for another purpose)."""
        earlier = self.invoice(ref)
        if earlier is not None:
            if earlier.purpose != purpose:  # melted for another account: it is spent
                raise TokenSpent("this token was already taken by Lightning")
            return await self.settle_invoice(ref) or earlier
        tok = parse_token(token)
        if tok.unit != "sat":
            raise UnsupportedUnit(tok.unit)
        url = self._trusted_url(to_mint)
        foreign = MintClient(self._session, tok.mint, self._timeout_s, follow_redirects=False)
        tok, ppks = await _full_ids(foreign, tok)
        plan = await self._plan(foreign, tok, url, input_fee(ppks))
        if plan.fee_sat > max_fee_sat:
            raise ForeignFees(tok.amount, plan.fee_sat)
        stored = self._store_invoice(url, plan.quote, ref, purpose)
        try:
            answer = await foreign.melt(plan.melt_quote, list(tok.proofs), [], self._melt_timeout_s)
            if answer.state == "UNPAID":
                raise MintError(None, "the token's mint did not pay the invoice")
        except (TokenSpent, TokenInvalid, MintError) as exc:
            if not isinstance(exc, MintUnavailable):  # refused: nobody will pay the invoice
                self._drop_invoice(ref)
            raise
        try:
            return await self.settle_invoice(ref) or stored
        except WalletError:  # the trusted mint is away: the watcher credits it later
            return self.invoice(ref) or stored

    def _drop_invoice(self, ref: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM wallet_invoices WHERE ref = ? AND state = 'unpaid'", (ref,))

    async def _plan(self, foreign: MintClient, tok: Token, url: str, fee_in: int) -> _Plan:
        reserve = max(2, -(-tok.amount // 100))  # a first guess; the mint's quote says
        for _ in range(QUOTE_TRIES):
            amount = tok.amount - fee_in - reserve
            if amount <= 0:
                raise TokenInvalid(f"a token of {tok.amount} sat does not cover the fees")
            quote = await self._mint_quote(url, amount)
            melt = await foreign.melt_quote(quote.request)
            if melt.amount != amount:
                raise MintError(None, "the token's mint quoted another amount than the invoice")
            if amount + melt.fee_reserve + fee_in <= tok.amount:
                return _Plan(quote, melt.quote, tok.amount - amount)
            reserve = melt.fee_reserve
        raise MintError(None, "the token's mint keeps raising its fee reserve")


async def _full_ids(foreign: MintClient, tok: Token) -> tuple[Token, list[int]]:
    """The token with its proofs' full keyset ids (a cashuB token may carry short ones), and
    each proof's input fee (ppk), from the keysets at the token's mint."""
    keysets = await foreign.keysets()
    proofs, ppks = [], []
    for p in tok.proofs:
        match = [k for k in keysets if k.id == p.keyset_id or k.id.startswith(p.keyset_id)]
        if not match:
            raise TokenInvalid(f"the token's mint does not list keyset {p.keyset_id}")
        proofs.append(replace(p, keyset_id=match[0].id))
        ppks.append(match[0].input_fee_ppk)
    return replace(tok, proofs=proofs), ppks
