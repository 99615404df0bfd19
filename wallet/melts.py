"""Paying a Lightning invoice: proofs of ours are melted at their mint (NUT-05/23), the unused
fee reserve coming back as change on blank outputs (NUT-08).

1. Ask the mint for a melt quote: the invoice's amount and the fee reserve it holds back.
2. Transaction: pick unspent proofs covering amount + reserve + their input fee (NUT-02),
   `debit()` the amount and the reserve and input fee beside it, reserve the inputs, allocate
   NUT-13 counters for the blank outputs, write the `wallet_melts` row (pending).
3. Melt at the mint (a Lightning payment: a longer timeout).
4. Paid: transaction storing the change, marking the inputs spent and `refund()`ing the part
   of the reserve the payment did not use. Unpaid: inputs back, the whole debit refunded.

A crash, a lost answer or a mint that stops answering leaves the row pending; `_resolve_melt`
(from `recover()` or a retry of the same purpose) asks the mint for the quote's state: paid ->
restore the change (NUT-09) and finish 4; unpaid -> roll back; pending -> ask again later.
So the account pays the amount, the input fee and the Lightning fee actually paid, once.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, replace

from wallet import bolt11
from wallet.core import WalletCore
from wallet.errors import (
    InsufficientFunds,
    MintAnswerGarbled,
    MintError,
    MintUnavailable,
    PayoutPending,
    TokenInvalid,
)
from wallet.keysets import Keyset
from wallet.mint_client import BlindSignature, MeltQuote
from wallet.outputs import Output, build_outputs, input_fee, make_proofs
from wallet.payout_plan import ranked
from wallet.store import Connection, Row, allocate_counter
from wallet.tokens import Proof


@dataclass(frozen=True)
class Melted:
    """A melt: `fee_sat` is what the account paid beyond the amount (input fee + the Lightning
    fee actually paid; while pending, the whole reserve held)."""

    purpose: str
    mint: str
    amount_sat: int
    fee_sat: int
    fee_reserve_sat: int
    state: str  # pending | paid | failed
    preimage: str | None
    request: str = ""  # the bolt11 invoice paid (lowercase)


@dataclass(frozen=True)
class MeltPlan:
    inputs: list[Row]
    input_fee: int
    blanks: int


class Melts(WalletCore):
    async def quote_melt(self, request: str, mint: str) -> MeltQuote:
        """The mint's melt quote for a bolt11 invoice: amount and fee reserve, nothing paid."""
        return await self._client(self._trusted_url(mint)).melt_quote(request)

    async def pay_invoice(self, request: str, purpose: str, mint: str) -> Melted:
        """Pay a bolt11 invoice out of proofs held at `mint`, debiting `purpose` the amount
        plus the fee reserve and input fee (the unused reserve refunded); idempotent."""
        invoice = bolt11.decode(request)
        if invoice.amount_msat is None or invoice.amount_msat % 1000:
            raise TokenInvalid("the invoice must carry an amount in whole sat")
        if invoice.expired():
            raise TokenInvalid("the invoice has expired")
        url = self._trusted_url(mint)
        earlier = await self.settle_melt(purpose)
        if earlier is not None:
            return earlier
        client = self._client(url)
        async with self._lock(url):
            done = self.melted(purpose)  # paid by a racing call while this one waited
            if done is not None and done.state != "failed":
                return done
            quote = await client.melt_quote(invoice.bolt11)
            if quote.amount * 1000 != invoice.amount_msat:
                raise MintError(None, "the mint quoted another amount than the invoice's")
            out_ks = await self._keysets.active(client)
            melt_id, inputs, outputs = self._begin_melt(purpose, url, invoice.bolt11, quote, out_ks)
            try:
                answer = await client.melt(
                    quote.quote, inputs, [o.message for o in outputs], self._melt_timeout_s
                )
            except MintUnavailable as e:
                if not e.maybe_sent:
                    self._fail_melt(melt_id, {})
                elif isinstance(e, MintAnswerGarbled):
                    await self._try_resolve_melt(melt_id)
                raise
            except MintError:
                await self._try_resolve_melt(melt_id)
                raise
            self._checkpoint("melt-after-melt")
            if answer.state == "PAID":
                self._finish_melt(melt_id, out_ks, outputs, answer.change, answer.preimage)
            elif answer.state == "UNPAID":
                await self._try_resolve_melt(melt_id)
        found = self.melted(purpose)
        assert found is not None
        return found

    def melted(self, purpose: str) -> Melted | None:
        """The latest melt of this purpose that has not failed (else the failed one)."""
        row = self._db.query_one(
            "SELECT * FROM wallet_melts WHERE purpose = ? ORDER BY state = 'failed', id DESC",
            (purpose,),
        )
        return None if row is None else _melted(row)

    async def settle_melt(self, purpose: str) -> Melted | None:
        """A melt of this purpose not failed, settled first if pending (PayoutPending while
        the mint cannot say); None if there is none."""
        row = self._db.query_one(
            "SELECT * FROM wallet_melts WHERE purpose = ? AND state != 'failed'", (purpose,)
        )
        if row is None:
            return None
        if row["state"] == "pending":
            if not self._ours_or_orphan(row["instance"]):
                raise PayoutPending(f"payment {purpose!r} is being settled by another instance")
            async with self._lock(row["mint"]):
                try:
                    await self._resolve_melt(row["id"])
                except MintUnavailable as e:
                    raise PayoutPending(f"payment {purpose!r} is pending: {e}") from e
        melted = self.melted(purpose)
        return None if melted is None or melted.state == "failed" else melted

    def _begin_melt(
        self, purpose: str, mint: str, request: str, quote: MeltQuote, ks: Keyset
    ) -> tuple[int, list[Proof], list[Output]]:
        with self._db.transaction() as conn:
            if self._purpose_taken(conn, purpose):
                raise PayoutPending(f"a payment for {purpose!r} is already under way")
            reserve_msat = quote.fee_reserve * 1000
            try:
                plan = _plan(conn, mint, quote.amount, quote.fee_reserve)
            except InsufficientFunds:  # an account that cannot pay it either is told so first
                self._debit(conn, purpose, quote.amount * 1000, reserve_msat)
                raise
            fee_msat = reserve_msat + plan.input_fee * 1000
            self._debit(conn, purpose, quote.amount * 1000, fee_msat)
            start = allocate_counter(conn, ks.id, plan.blanks) if plan.blanks else 0
            melt_id = self._insert_melt(conn, purpose, mint, request, quote, plan, ks, start)
            conn.executemany(
                "UPDATE wallet_proofs SET state = 'reserved', melt_id = ? WHERE y = ?",
                [(melt_id, r["y"]) for r in plan.inputs],
            )
        outputs = build_outputs(self._deriver, ks, start, [1] * plan.blanks)
        return melt_id, [_proof(r) for r in plan.inputs], outputs

    def _insert_melt(
        self,
        conn: Connection,
        purpose: str,
        mint: str,
        request: str,
        quote: MeltQuote,
        plan: MeltPlan,
        ks: Keyset,
        start: int,
    ) -> int:
        now = int(time.time())
        debit = (quote.amount + quote.fee_reserve + plan.input_fee) * 1000
        cur = conn.execute(
            "INSERT INTO wallet_melts (purpose, mint, quote, request, amount_sat,"
            " fee_reserve_sat, input_fee_sat, inputs_sat, debit_msat, keyset_id, counter_start,"
            " blanks, state, created_at, updated_at, instance)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
            (
                purpose,
                mint,
                quote.quote,
                request,
                quote.amount,
                quote.fee_reserve,
                plan.input_fee,
                sum(r["amount"] for r in plan.inputs),
                debit,
                ks.id,
                start,
                plan.blanks,
                now,
                now,
                self._db.instance,
            ),
        )
        return int(cur.lastrowid or 0)

    def _finish_melt(
        self,
        melt_id: int,
        ks: Keyset,
        outputs: list[Output],
        change: list[BlindSignature],
        preimage: str | None,
    ) -> None:
        """Paid: the change (signatures in the order of the blank outputs, NUT-08) is ours,
        the inputs spent, and the reserve the payment did not use goes back to the account."""
        row = self._db.query_one("SELECT * FROM wallet_melts WHERE id = ?", (melt_id,))
        assert row is not None
        if len(change) > len(outputs):
            raise MintError(None, "the mint returned more change than blank outputs")
        filled = [
            replace(o, message=replace(o.message, amount=s.amount))
            for o, s in zip(outputs, change, strict=False)
        ]
        made = make_proofs(ks, filled, change)
        back = sum(n.proof.amount for n in made)
        kept = row["inputs_sat"] - row["input_fee_sat"] - row["amount_sat"] - back  # LN fee
        if kept < 0:
            raise MintError(None, "the mint returned more change than it could owe")
        refund_msat = max(0, row["fee_reserve_sat"] - kept) * 1000
        with self._db.transaction() as conn:
            if not conn.execute(
                "UPDATE wallet_melts SET state = 'paid', fee_paid_sat = ?, preimage = ?,"
                " updated_at = ? WHERE id = ? AND state = 'pending'",
                (kept, preimage, int(time.time()), melt_id),
            ).rowcount:
                return
            conn.execute("UPDATE wallet_proofs SET state = 'spent' WHERE melt_id = ?", (melt_id,))
            self._insert_proofs(conn, row["mint"], made, origin=f"melt:{row['purpose']}")
            if refund_msat:
                self._refund(conn, row["purpose"], refund_msat)
        self._events.paid_out(row["mint"], row["amount_sat"] * 1000)

    async def _try_resolve_melt(self, melt_id: int) -> None:
        with contextlib.suppress(MintUnavailable, MintError):  # stays pending for recover()
            await self._resolve_melt(melt_id)

    async def _resolve_melt(self, melt_id: int) -> None:
        row = self._db.query_one("SELECT * FROM wallet_melts WHERE id = ?", (melt_id,))
        if row is None or row["state"] != "pending":
            return
        client = self._client(row["mint"])
        quote = await client.melt_quote_state(row["quote"])
        if quote.state == "PENDING":
            raise MintUnavailable("the mint is still paying this invoice")
        inputs = self._db.query("SELECT y FROM wallet_proofs WHERE melt_id = ?", (melt_id,))
        states = await client.checkstate([r["y"] for r in inputs])
        if quote.state == "UNPAID":
            if any(s == "PENDING" for s in states.values()):
                raise MintUnavailable("the mint still holds this payment's inputs")
            self._fail_melt(melt_id, states)
            return
        ks = await self._stored_keyset(client, row["keyset_id"])
        outputs = build_outputs(self._deriver, ks, row["counter_start"], [1] * row["blanks"])
        signed = await client.restore([o.message for o in outputs]) if outputs else {}
        change = [signed[o.message.b_] for o in outputs if o.message.b_ in signed]
        used = [o for o in outputs if o.message.b_ in signed]
        self._finish_melt(melt_id, ks, used, change, quote.preimage)

    def _fail_melt(self, melt_id: int, states: dict[str, str]) -> None:
        """Unpaid: inputs the mint calls spent stay spent, the rest are ours again; the whole
        debit goes back to the account."""
        row = self._db.query_one("SELECT * FROM wallet_melts WHERE id = ?", (melt_id,))
        assert row is not None
        inputs = self._db.query("SELECT y FROM wallet_proofs WHERE melt_id = ?", (melt_id,))
        with self._db.transaction() as conn:
            if not conn.execute(
                "UPDATE wallet_melts SET state = 'failed', updated_at = ?"
                " WHERE id = ? AND state = 'pending'",
                (int(time.time()), melt_id),
            ).rowcount:
                return
            for r in inputs:
                spent = states.get(r["y"]) == "SPENT"
                conn.execute(
                    "UPDATE wallet_proofs SET state = ?, melt_id = ? WHERE y = ?",
                    ("spent" if spent else "unspent", melt_id if spent else None, r["y"]),
                )
            self._refund(conn, row["purpose"], row["debit_msat"])

    async def recover_melts(self) -> None:
        """Settle every melt left pending (by a crash, or a mint that stopped answering)."""
        rows = self._db.query(
            "SELECT id, mint, instance FROM wallet_melts WHERE state = 'pending' ORDER BY id"
        )
        for row in rows:
            if self._ours_or_orphan(row["instance"]):
                async with self._lock(row["mint"]):
                    await self._try_resolve_melt(row["id"])


def _plan(conn: Connection, mint: str, amount: int, reserve: int) -> MeltPlan:
    """The fewest large unspent proofs at `mint` covering the amount, the fee reserve and their
    own input fee; blank outputs enough to take back all the rest (NUT-08)."""
    need = amount + reserve
    held = conn.execute(
        "SELECT p.*, k.input_fee_ppk FROM wallet_proofs p JOIN wallet_keysets k"
        " ON k.id = p.keyset_id WHERE p.mint = ? AND p.state = 'unspent'",
        (mint,),
    ).fetchall()
    picked: list[Row] = []
    total = ppk = 0
    for r in ranked(held):
        if picked and total >= need + input_fee([ppk]):
            break
        picked.append(r)
        total += r["amount"]
        ppk += r["input_fee_ppk"]
    fee = input_fee([ppk])
    if total < need + fee:
        raise InsufficientFunds(f"{total} sat held cannot pay {need} sat plus a {fee} sat fee")
    return MeltPlan(picked, fee, (total - amount - fee).bit_length())


def _proof(row: Row) -> Proof:
    return Proof(row["amount"], row["keyset_id"], row["secret"], row["c"])


def _melted(row: Row) -> Melted:
    paid = row["state"] == "paid"
    fee = row["input_fee_sat"] + (row["fee_paid_sat"] if paid else row["fee_reserve_sat"])
    return Melted(
        purpose=row["purpose"],
        mint=row["mint"],
        amount_sat=row["amount_sat"],
        fee_sat=fee,
        fee_reserve_sat=row["fee_reserve_sat"],
        state=row["state"],
        preimage=row["preimage"],
        request=row["request"],
    )
