"""Receiving by Lightning: a bolt11 mint quote (NUT-04/23) becomes proofs and a credit, once.

1. `create_invoice`: ask a trusted mint for a quote; store it (`wallet_invoices`, unpaid) under
   the node's public `ref` and the `purpose` to credit. The mint's quote id never leaves here.
2. `settle_invoice` (the node's watcher, a client's poll, `recover()`): ask the mint for the
   quote's state. Paid: one transaction allocates NUT-13 counters and marks the row minting.
3. Mint (the only call that makes ecash).
4. Transaction: store the proofs, mark the row issued, record the credit, call `credit()`.

A crash or a lost answer between 3 and 4 leaves the row minting with its outputs; settling it
again asks the mint to restore them (NUT-09) and finishes 4, or mints with the same outputs if
the mint signed nothing. `wallet_credits` (one row per purpose) keeps the credit to one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import orjson

from wallet import bolt11
from wallet.core import WalletCore
from wallet.errors import MintError, MintUnavailable, TokenInvalid
from wallet.keysets import Keyset
from wallet.mint_client import BlindSignature, MintClient, MintQuote
from wallet.outputs import Output, build_outputs, make_proofs, split_amount
from wallet.store import Row, allocate_counter

log = logging.getLogger(__name__)
EXPIRY_GRACE_S = 60  # an invoice is watched this long past its expiry (a late settlement)
OPEN = ("unpaid", "minting")


@dataclass(frozen=True)
class Invoice:
    ref: str
    purpose: str
    mint: str
    bolt11: str
    payment_hash: str
    amount_sat: int
    expires_at: int
    state: str  # unpaid | minting | issued | expired
    paid_at: int | None
    created_at: int

    @property
    def status(self) -> str:
        """RIP-08's status: pending | paid | expired."""
        return {"issued": "paid", "expired": "expired"}.get(self.state, "pending")


class Invoices(WalletCore):
    async def offers_bolt11(self, mint: str) -> bool:
        """Whether a trusted mint mints sat for bolt11 invoices (NUT-06 info, NUT-04 methods)."""
        info = await self._client(self._trusted_url(mint)).info()
        nut4 = (info.get("nuts") or {}).get("4") or {}
        if not isinstance(nut4, dict) or nut4.get("disabled"):
            return False
        methods = nut4.get("methods") or []
        return any(
            isinstance(m, dict) and m.get("method") == "bolt11" and m.get("unit") == "sat"
            for m in methods
        )

    async def create_invoice(self, mint: str, amount_sat: int, ref: str, purpose: str) -> Invoice:
        """A bolt11 invoice of `amount_sat` at `mint`, credited to `purpose` once paid."""
        url = self._trusted_url(mint)
        return self._store_invoice(url, await self._mint_quote(url, amount_sat), ref, purpose)

    async def _mint_quote(self, url: str, amount_sat: int) -> MintQuote:
        quote = await self._client(url).mint_quote(amount_sat)
        invoice = bolt11.decode(quote.request)
        if invoice.amount_msat != amount_sat * 1000 or quote.amount != amount_sat:
            raise MintError(None, "the mint's invoice is not for the amount asked")
        return quote

    def _store_invoice(self, url: str, quote: MintQuote, ref: str, purpose: str) -> Invoice:
        invoice = bolt11.decode(quote.request)
        now = int(time.time())
        expires_at = quote.expiry or invoice.expires_at
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO wallet_invoices (ref, purpose, mint, quote, request, payment_hash,"
                " amount_sat, expires_at, state, created_at, updated_at, instance)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'unpaid', ?, ?, ?)",
                (
                    ref,
                    purpose,
                    url,
                    quote.quote,
                    invoice.bolt11,
                    invoice.payment_hash,
                    quote.amount,
                    expires_at,
                    now,
                    now,
                    self._db.instance,
                ),
            )
        found = self.invoice(ref)
        assert found is not None
        return found

    def invoice(self, ref: str) -> Invoice | None:
        row = self._db.query_one("SELECT * FROM wallet_invoices WHERE ref = ?", (ref,))
        return None if row is None else _invoice(row)

    def invoice_for(self, request: str) -> Invoice | None:
        """The invoice the node issued as this bolt11 (None if it did not issue it)."""
        try:
            text = bolt11.decode(request).bolt11
        except TokenInvalid:
            return None
        row = self._db.query_one("SELECT * FROM wallet_invoices WHERE request = ?", (text,))
        return None if row is None else _invoice(row)

    def open_invoices(self) -> list[str]:
        """Refs of the invoices still watched: unpaid (not long expired) or minting."""
        rows = self._db.query(
            "SELECT ref FROM wallet_invoices WHERE state IN ('unpaid', 'minting') ORDER BY id"
        )
        return [str(r["ref"]) for r in rows]

    async def settle_invoice(self, ref: str, *, reopen: bool = False) -> Invoice | None:
        """Ask the mint about an open invoice; mint and credit it if paid (exactly once).
        `reopen`: an invoice marked expired is asked about too (paid late, or a lost answer)."""
        row = self._db.query_one("SELECT mint FROM wallet_invoices WHERE ref = ?", (ref,))
        if row is None:
            return None
        async with self._lock(row["mint"]):
            now = self._db.query_one("SELECT * FROM wallet_invoices WHERE ref = ?", (ref,))
            # an unpaid row anyone may settle (the minting mark is conditional); a minting one
            # only its instance, or any once that instance is gone
            if now is not None and (
                now["state"] == "unpaid"
                or (reopen and now["state"] == "expired")
                or (now["state"] == "minting" and self._ours_or_orphan(now["instance"]))
            ):
                await self._settle(now)
        return self.invoice(ref)

    async def _settle(self, row: Row) -> None:
        client = self._client(row["mint"])
        if row["state"] == "minting":
            ks = await self._stored_keyset(client, row["keyset_id"])
            outputs = self._outputs(row, ks)
            signed = await client.restore([o.message for o in outputs])
            if signed:
                if len(signed) != len(outputs):
                    raise MintError(None, f"invoice {row['id']}: the mint restored only part")
                self._commit(row, ks, outputs, [signed[o.message.b_] for o in outputs])
                return
        quote = await client.mint_quote_state(row["quote"])
        if quote.state == "UNPAID":
            if time.time() > row["expires_at"] + EXPIRY_GRACE_S:
                self._set_state(row["id"], "unpaid", "expired")
            return
        if quote.state == "ISSUED":  # issued, yet not to our outputs: the quote id leaked
            log.error("invoice %s was issued to outputs not ours", row["payment_hash"])
            raise MintError(None, "the mint issued this invoice's ecash elsewhere")
        ks, row = await self._begin_minting(client, row)
        outputs = self._outputs(row, ks)
        sigs = await client.mint(row["quote"], [o.message for o in outputs])
        self._checkpoint("mint-after-mint")
        self._commit(row, ks, outputs, sigs)

    async def _begin_minting(self, client: MintClient, row: Row) -> tuple[Keyset, Row]:
        """The outputs of a paid invoice, counters stored before the mint sees them."""
        if row["state"] == "minting":
            return await self._stored_keyset(client, row["keyset_id"]), row
        ks = await self._keysets.active(client)
        amounts = split_amount(row["amount_sat"], ks.amounts)
        with self._db.transaction() as conn:
            start = allocate_counter(conn, ks.id, len(amounts))
            changed = conn.execute(
                "UPDATE wallet_invoices SET state = 'minting', keyset_id = ?, counter_start = ?,"
                " amounts = ?, paid_at = ?, updated_at = ?, instance = ?"
                " WHERE id = ? AND state IN ('unpaid', 'expired')",
                (
                    ks.id,
                    start,
                    orjson.dumps(amounts).decode(),
                    int(time.time()),
                    int(time.time()),
                    self._db.instance,
                    row["id"],
                ),
            ).rowcount
        if not changed:
            raise MintUnavailable("another node instance is minting this invoice")
        fresh = self._db.query_one("SELECT * FROM wallet_invoices WHERE id = ?", (row["id"],))
        return ks, fresh

    def _outputs(self, row: Row, ks: Keyset) -> list[Output]:
        amounts = orjson.loads(row["amounts"])
        return build_outputs(self._deriver, ks, row["counter_start"], amounts)

    def _commit(
        self, row: Row, ks: Keyset, outputs: list[Output], sigs: list[BlindSignature]
    ) -> None:
        made = make_proofs(ks, outputs, sigs)
        amount_msat = sum(n.proof.amount for n in made) * 1000
        now = int(time.time())
        with self._db.transaction() as conn:
            if not conn.execute(
                "UPDATE wallet_invoices SET state = 'issued', updated_at = ?"
                " WHERE id = ? AND state = 'minting'",
                (now, row["id"]),
            ).rowcount:
                return  # another instance committed it first
            self._insert_proofs(conn, row["mint"], made, origin=f"invoice:{row['purpose']}")
            conn.execute(
                "INSERT INTO wallet_credits (purpose, amount_msat, fee_msat, mint, unit,"
                " created_at) VALUES (?, ?, 0, ?, 'sat', ?)",
                (row["purpose"], amount_msat, row["mint"], now),
            )
            self._credit(conn, row["purpose"], amount_msat, row["mint"])
        self._events.redeemed(row["mint"], amount_msat)

    def _set_state(self, invoice_id: int, before: str, after: str) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE wallet_invoices SET state = ?, updated_at = ? WHERE id = ? AND state = ?",
                (after, int(time.time()), invoice_id, before),
            )


def _invoice(row: Row) -> Invoice:
    return Invoice(
        ref=row["ref"],
        purpose=row["purpose"],
        mint=row["mint"],
        bolt11=row["request"],
        payment_hash=row["payment_hash"],
        amount_sat=row["amount_sat"],
        expires_at=row["expires_at"],
        state=row["state"],
        paid_at=row["paid_at"],
        created_at=row["created_at"],
    )
