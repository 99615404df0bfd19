"""Lightning in and out (Routstr's RIP-08): an invoice funds a new key or tops one up, and an
account pays out to a bolt11 invoice. The node has no Lightning node of its own: an invoice is
a mint quote at a trusted mint (NUT-04/23), a payment a melt there (NUT-05/08).

In: `create_invoice` asks the wallet for a quote under a purpose naming the account to credit
("create:<key hash>" for a new key, whose key is derived from the invoice's id and handed out
once paid; "topup:<account>:ln:<id>"). `watch` settles every open invoice on its own, so one
paid while no client polls is credited all the same; the wallet credits it in the transaction
that stores its proofs, once (see wallet.invoices).

Out: `pay` debits the amount plus the melt's fee reserve and input fee, under the account's
withdraw purpose and Idempotency-Key, and the wallet refunds the reserve the payment did not
use (see wallet.melts).
"""

from __future__ import annotations

import logging
import secrets
from urllib.parse import urlsplit

import aiohttp

import wallet as cashu
from node.errors import BadRequest, NotFound, ServiceUnavailable, UpstreamError
from node.money import lnurl
from node.money.books import EARNINGS, purpose
from node.money.idempotency import check_melt
from node.money.ledger import Ledger, hash_key
from node.money.payments import MINT_RETRY_AFTER_S, key_reused, token_spent, wallet_errors
from node.settings.money import LightningSection

log = logging.getLogger(__name__)


def fee_margin_sat(sats: int) -> int:
    """What a payment of all of `sats` keeps back for its fees: a mint's usual Lightning fee
    reserve (1%, at least 2 sat) and an input fee."""
    return max(2, -(-sats // 100)) + 1


def _unavailable(message: str) -> ServiceUnavailable:
    return ServiceUnavailable(
        message, code="lightning_unavailable", headers={"Retry-After": MINT_RETRY_AFTER_S}
    )


class Lightning:
    def __init__(
        self,
        settings: LightningSection,
        mints: list[str],
        ledger: Ledger,
        wallet: cashu.Wallet,
        http: aiohttp.ClientSession,
    ) -> None:
        self.settings, self.mints, self.ledger, self.wallet = settings, mints, ledger, wallet
        self.http = http
        self.accept_foreign = False  # [cashu] accept_foreign, set by the builder
        self._mint: str | None = None

    async def issuing_mint(self) -> str:
        """The trusted mint that issues the node's invoices: the one configured, else the first
        that offers bolt11 (asked once, then remembered)."""
        if not self.settings.enabled:
            raise NotFound(
                "this node does not sell access for Lightning invoices", code="lightning_off"
            )
        if self._mint is not None:
            return self._mint
        candidates = [self.settings.mint] if self.settings.mint else self.mints
        for mint in candidates:
            try:
                if await self.wallet.offers_bolt11(mint):
                    self._mint = mint
                    return mint
            except cashu.WalletError as exc:
                log.warning("mint %s: cannot tell whether it offers bolt11 (%s)", mint, exc)
        raise _unavailable("no trusted mint issues Lightning invoices right now; retry later")

    def check_amount(self, sats: object) -> int:
        low, high = self.settings.min_sats, self.settings.max_sats
        if not isinstance(sats, int) or isinstance(sats, bool) or not low <= sats <= high:
            raise BadRequest(
                f"amount_sats must be a whole number of sat from {low} to {high}",
                code="amount_out_of_range",
                param="amount_sats",
            )
        return sats

    async def create_invoice(self, sats: int, account_id: int | None) -> cashu.Invoice:
        """An invoice funding a new key (`account_id` None) or topping up an account."""
        mint = await self.issuing_mint()
        self._room_for_an_invoice()
        ref = "lni_" + secrets.token_urlsafe(18)
        if account_id is None:
            what = purpose("create", hash_key(self.api_key_of(ref)))
        else:
            what = purpose("topup", account_id, "ln", ref)
        with wallet_errors():
            return await self.wallet.create_invoice(mint, sats, ref, what)

    def _room_for_an_invoice(self) -> None:
        """Every open invoice is watched (a mint call a round): only so many at once."""
        if len(self.wallet.open_invoices()) >= self.settings.max_open_invoices:
            raise _unavailable("too many invoices are waiting to be paid; retry later")

    def api_key_of(self, ref: str) -> str:
        return "sk-" + self.wallet.derived_secret("invoice:" + ref)

    def api_key(self, invoice: cashu.Invoice) -> str | None:
        """The key a paid "create" invoice funded (None for a topup, or while unpaid)."""
        if invoice.status != "paid" or not invoice.purpose.startswith("create:"):
            return None
        return self.api_key_of(invoice.ref)

    def takes_foreign(self, token: str) -> bool:
        """Whether this token is of an untrusted mint the node would take by Lightning."""
        return self.accept_foreign and self.wallet.is_foreign(token)

    async def redeem_foreign(
        self, token: str, account_id: int | None, max_fee_sat: int
    ) -> tuple[cashu.Invoice, str | None]:
        """An untrusted mint's token melted into one of the node's invoices, credited to a new
        key (returned) or to `account_id`; fees above `max_fee_sat`: a 400 naming them. A mint on a
        private or loopback address is refused before any contact, as a Lightning address's
        host is (unless `[lightning] lnurl_allow_local`)."""
        if not self.settings.lnurl_allow_local:  # the client chose the mint: no inside host
            with wallet_errors():
                host = urlsplit(cashu.parse_token(token).mint).hostname or ""
            await lnurl.refuse_local(host, "the token's mint", "cashu_token")
        ref = "fx_" + self.wallet.claim_secret(token)[:40]
        if account_id is None:
            key: str | None = self.api_key_of(ref)
            what = purpose("create", hash_key(str(key)))
        else:
            key, what = None, purpose("topup", account_id, "fx", ref)
        mint = await self.issuing_mint()
        if self.wallet.invoice(ref) is None:  # (a retry finds its invoice whatever the count)
            self._room_for_an_invoice()  # a lying mint's "paid" leaves its invoice open
        try:
            with wallet_errors():
                invoice = await self.wallet.redeem_foreign(token, mint, ref, what, max_fee_sat)
        except cashu.ForeignFees as fees:
            raise BadRequest(
                f'{fees}; to accept, send the token again with "accept_fees_sat": {fees.fee_sat}',
                code="foreign_mint_fees",
                param="accept_fees_sat",
            ) from fees
        if key is not None and invoice.status == "paid":
            # whoever gave the token away still knows it: the key it funded is handed out
            # again only while nothing has been spent from it (as `Payments.create_key` does)
            account = self.ledger.find(hash_key(key))
            if account is None or not account.untouched(invoice.amount_sat * 1000):
                raise token_spent()
        return invoice, key

    async def status(self, ref: str) -> cashu.Invoice:
        """The invoice, asked about at the mint first if still open."""
        invoice = self.wallet.invoice(ref)
        if invoice is None:
            raise NotFound("no invoice with this id", code="invoice_not_found")
        if invoice.status == "pending":
            invoice = await self._settle(ref) or invoice
        return invoice

    async def recover(self, bolt11: str) -> cashu.Invoice:
        """RIP-08's recovery: the invoice the node issued as this bolt11, settled now (an
        expired one too: the mint may have been paid late)."""
        invoice = self.wallet.invoice_for(bolt11)
        if invoice is None:
            raise NotFound("this node issued no such invoice", code="invoice_not_found")
        return await self._settle(invoice.ref, reopen=True) or invoice

    async def _settle(self, ref: str, reopen: bool = False) -> cashu.Invoice | None:
        try:
            return await self.wallet.settle_invoice(ref, reopen=reopen)
        except cashu.WalletError as exc:  # the watcher tries again; the invoice stays open
            log.warning("an invoice is not settled yet: %s", exc)  # its ref: a credential
            return None

    async def watch(self) -> int:
        """Settle every open invoice once; the number credited."""
        credited = 0
        for ref in self.wallet.open_invoices():
            invoice = await self._settle(ref)
            credited += invoice is not None and invoice.status == "paid"
        return credited

    async def pay_address(
        self, account_id: int, address: str, sats: int, key: str, mint: str | None
    ) -> cashu.Melted:
        """Pay `sats` to a Lightning address (LNURL-pay), as `pay` does an invoice."""
        earlier = await self._earlier(purpose("withdraw", account_id, key))
        if earlier is not None:  # (the address is not recorded: its amount and mint are)
            return check_melt(earlier, None, sats, self._asked(mint))
        self._refuse(account_id, sats * 1000)  # before fetching anything
        return await self.pay(account_id, await self._fetch(address, sats), key, mint)

    async def pay(self, account_id: int, bolt11: str, key: str, mint: str | None) -> cashu.Melted:
        """Pay a bolt11 invoice out of the account: amount + fee reserve + input fee debited,
        the unused reserve refunded; once per Idempotency-Key."""
        what = purpose("withdraw", account_id, key)
        earlier = await self._earlier(what)
        if earlier is not None:
            return check_melt(earlier, bolt11, None, self._asked(mint))
        invoice = _invoice(bolt11)
        self._refuse(account_id, invoice.amount_msat or 0)
        account = self.ledger.get(account_id)
        melted = await self._melt(what, invoice, mint or account.mint)
        return check_melt(melted, bolt11, None, self._asked(mint))  # a racing retry's?

    async def pay_earnings(
        self, bolt11: str | None, address: str | None, sats: int, key: str, mint: str | None
    ) -> cashu.Melted:
        """The operator's earnings to an invoice or a Lightning address: the payout hook caps
        the amount plus fees at what the node owns beyond its debts."""
        what = purpose(EARNINGS, key)
        earlier = await self._earlier(what)
        if earlier is not None:
            return check_melt(earlier, bolt11, sats or None, self._asked(mint))
        if bolt11 is None:
            bolt11 = await self._fetch(str(address), sats)
        melted = await self._melt(what, _invoice(bolt11), mint)
        return check_melt(melted, bolt11, None, self._asked(mint))

    async def _fetch(self, address: str, sats: int) -> str:
        allow_local = self.settings.lnurl_allow_local
        return await lnurl.invoice_for(self.http, address, sats * 1000, allow_local)

    async def _earlier(self, what: str) -> cashu.Melted | None:
        """The payment retried under this purpose; a 409 if it paid a token out instead."""
        with wallet_errors():
            if await self.wallet.settle_payout(what) is not None:
                raise key_reused("a withdrawal as a token")
            return await self.wallet.settle_melt(what)

    def _asked(self, mint: str | None) -> str | None:
        """The mint a payment request chose, as `_melt` reads it (another is not used)."""
        return mint if mint in self.mints else None

    def _refuse(self, account_id: int, amount_msat: int) -> None:
        refusal = self.ledger.get(account_id).refusal(amount_msat)
        if refusal is not None:  # before any mint call; the melt's debit checks it again
            raise refusal

    async def _melt(
        self, what: str, invoice: cashu.Bolt11Invoice, mint: str | None
    ) -> cashu.Melted:
        url = mint if mint in self.mints else None
        url = url or await self.issuing_mint()
        try:
            with wallet_errors():
                melted = await self.wallet.pay_invoice(invoice.bolt11, what, url)
        except UpstreamError as exc:  # the mint refused to quote or to pay
            left = self.wallet.melted(what)
            if left is None or left.state == "failed":
                raise _cannot_pay(f"the mint did not pay the invoice ({exc.message})") from exc
            raise  # the melt is in doubt: the account stays debited until it is settled
        if melted.state == "failed":
            raise _cannot_pay("the mint could not pay the invoice")
        return melted


def _invoice(bolt11: str) -> cashu.Bolt11Invoice:
    """The invoice, or a 400 naming what is wrong with it (nothing taken, no mint called)."""
    try:
        invoice = cashu.decode_bolt11(bolt11)
    except cashu.TokenInvalid as exc:
        raise BadRequest(str(exc), code="invoice_invalid", param="invoice") from None
    if invoice.amount_msat is None or invoice.amount_msat % 1000:
        raise BadRequest(
            "the invoice must be for an amount in whole sat",
            code="invoice_amount_missing",
            param="invoice",
        )
    if invoice.expired():
        raise BadRequest("the invoice has expired", code="invoice_expired", param="invoice")
    return invoice


def _cannot_pay(message: str) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"{message}; nothing was taken from the balance, retry later",
        code="mint_cannot_pay",
        headers={"Retry-After": MINT_RETRY_AFTER_S},
    )
