"""Paying out: proofs of ours become a token, debited in the same transaction that reserves them.

1. Transaction: select unspent proofs, plan the payout (`payout_plan`), `debit()` the amount and
   the plan's fee, reserve the inputs, allocate counters, write the payout row. If some proofs
   sum exactly to what is needed, they are the token: the payout is finished in this same
   transaction, with no network call and no fee.
2. Otherwise swap at the mint for the token's outputs + our change (all NUT-13 outputs).
3. Transaction: store the change, mark the inputs spent, record the token.

A definite refusal or an ambiguous end is settled by `_resolve_payout` (right away, or from
`recover()`): restore our outputs if the mint signed them (then finish 3), else hand the unspent
inputs back and `refund()` what was debited.

The token is worth exactly the amount; its receiver pays its own fee to redeem it (NUT-02). The
payout's own fee — the mint's fee on our swap's inputs, recorded as `fee_sat` — is debited with
the amount, so the node never pays a fee out of proofs that back other balances.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import orjson

from wallet.core import WalletCore
from wallet.errors import (
    InsufficientFunds,
    MintAnswerGarbled,
    MintError,
    MintUnavailable,
    PayoutPending,
    WalletError,
)
from wallet.keysets import Keyset
from wallet.mint_client import BlindSignature
from wallet.outputs import Output, build_outputs, make_proofs
from wallet.payout_plan import PayoutPlan, plan_most, plan_payout, ranked
from wallet.store import Connection, Row, allocate_counter
from wallet.tokens import Proof, Token, dleq_of, serialize_v3, serialize_v4

# (proofs held ranked largest first, fee ppk per keyset, the keyset of the outputs) -> PayoutPlan
Planner = Callable[[Sequence[Row], dict[str, int], Keyset], PayoutPlan]


@dataclass(frozen=True)
class PaidOut:
    """A finished payout: the token, worth `amount_sat`, and the fee debited beside it."""

    token: str
    amount_sat: int
    fee_sat: int
    mint: str


class Payouts(WalletCore):
    async def send(
        self, amount_sat: int, purpose: str, mint: str | None = None, *, v3: bool = False
    ) -> str:
        """Pay out a token worth `amount_sat`, debiting it plus the payout's fee; idempotent
        per `purpose`."""
        if amount_sat <= 0:
            raise WalletError("payout amount must be positive")
        return await self._pay(partial(plan_payout, amount_sat), purpose, mint, v3)

    async def send_up_to(
        self, budget_msat: int, purpose: str, mint: str | None = None, *, v3: bool = False
    ) -> str:
        """Pay out the largest token whose value plus the payout's fee fits `budget_msat`
        (BudgetTooSmall if none does); idempotent per `purpose`. The debit hook still refuses
        if the account no longer holds the budget."""
        return await self._pay(partial(plan_most, budget_msat), purpose, mint, v3)

    async def _pay(self, planner: Planner, purpose: str, mint: str | None, v3: bool) -> str:
        earlier = await self._settle_earlier_payout(purpose)
        if earlier is not None:
            return earlier
        url = self._trusted_url(mint) if mint is not None else self._richest_mint()
        client = self._client(url)
        async with self._lock(url):
            done = self.payout(purpose)  # paid by a racing call while this one waited
            if done is not None:
                return done
            out_ks = await self._keysets.active(client)
            payout_id, plan, start, token = self._begin_payout(planner, purpose, url, out_ks, v3)
            if token is not None:  # paid with proofs held as they are: no swap
                self._events.paid_out(url, plan.amount * 1000)
                return token
            outputs = build_outputs(self._deriver, out_ks, start, plan.send + plan.change)
            order = sorted(range(len(outputs)), key=lambda i: outputs[i].message.amount)
            inputs = [_proof(r) for r in plan.inputs]
            try:
                sigs = await client.swap(inputs, [outputs[i].message for i in order])
            except MintAnswerGarbled:  # the mint is done: restore tells if it paid, right away
                await self._try_resolve(payout_id)
                token = self.payout(purpose)
                if token is not None:
                    return token
                if self._failed(payout_id):  # rolled back and refunded: a plain refusal
                    raise MintError(None, "the mint garbled its answer and paid nothing") from None
                raise
            except MintUnavailable as e:
                if not e.maybe_sent:  # the mint never saw it: undo now, refund the account
                    self._roll_back(payout_id, {})
                raise  # else the outcome is unknown: recover() settles it
            except WalletError as e:
                if isinstance(e, MintError) and e.keyset_refused:  # e.g. it was retired
                    self._keysets.mark_stale(url)
                await self._try_resolve(payout_id)
                raise
            self._checkpoint("send-after-swap")
            in_order: list[BlindSignature | None] = [None] * len(outputs)
            for j, i in enumerate(order):
                in_order[i] = sigs[j]
            ordered = [s for s in in_order if s is not None]
            return self._commit_payout(payout_id, out_ks, outputs, ordered)

    async def settle_payout(self, purpose: str) -> str | None:
        """The token of this purpose's payout, settling one left pending first (a retry after a
        lost answer); None if there is none or it failed. PayoutPending while the mint is away."""
        return await self._settle_earlier_payout(purpose)

    def payout(self, purpose: str) -> str | None:
        """The token of a finished payout for this purpose (for retries and lost answers)."""
        paid = self.paid(purpose)
        return None if paid is None else paid.token

    def paid(self, purpose: str) -> PaidOut | None:
        """A finished payout for this purpose: its token, amount and the fee debited with it."""
        row = self._db.query_one(
            "SELECT token, amount_sat, fee_sat, mint FROM wallet_payouts"
            " WHERE purpose = ? AND state = 'done'",
            (purpose,),
        )
        if row is None:
            return None
        return PaidOut(str(row["token"]), row["amount_sat"], row["fee_sat"], row["mint"])

    def _richest_mint(self) -> str:
        rows = self._db.query(
            "SELECT mint, SUM(amount) AS total FROM wallet_proofs WHERE state = 'unspent'"
            " GROUP BY mint ORDER BY total DESC"
        )
        for row in rows:
            if row["mint"] in self._clients:
                return str(row["mint"])
        raise InsufficientFunds("no proofs held at any trusted mint")

    def _begin_payout(
        self, planner: Planner, purpose: str, mint: str, out_ks: Keyset, v3: bool
    ) -> tuple[int, PayoutPlan, int, str | None]:
        """Plan, debit the amount and the fee, reserve the inputs: one transaction."""
        with self._db.transaction() as conn:
            if self._purpose_taken(conn, purpose):
                raise PayoutPending(f"a payout for {purpose!r} is already under way")
            held = conn.execute(  # fees from the table: another instance may have stored
                # proofs in a keyset this process has not listed yet
                "SELECT p.*, k.input_fee_ppk FROM wallet_proofs p JOIN wallet_keysets k"
                " ON k.id = p.keyset_id WHERE p.mint = ? AND p.state = 'unspent'",
                (mint,),
            ).fetchall()
            ppk = {r["keyset_id"]: r["input_fee_ppk"] for r in held}
            try:
                plan = planner(ranked(held), ppk, out_ks)
            except InsufficientFunds as short:
                if short.amount_sat:  # an account that cannot pay it either is told so first
                    self._debit(conn, purpose, short.amount_sat * 1000, short.fee_sat * 1000)
                raise  # (rolls that debit back)
            self._debit(conn, purpose, plan.amount * 1000, plan.fee_sat * 1000)
            n = len(plan.send) + len(plan.change)
            start = allocate_counter(conn, out_ks.id, n) if n else 0
            payout_id = self._insert_payout(conn, purpose, mint, plan, out_ks, start, v3)
            state = "spent" if plan.direct else "reserved"
            conn.executemany(
                "UPDATE wallet_proofs SET state = ?, payout_id = ? WHERE y = ?",
                [(state, payout_id, r["y"]) for r in plan.inputs],
            )
            token = None
            if plan.direct:
                token = _serialize(mint, [_proof(r) for r in plan.inputs], v3)
                conn.execute(
                    "UPDATE wallet_payouts SET state = 'done', token = ? WHERE id = ?",
                    (token, payout_id),
                )
        return payout_id, plan, start, token

    def _insert_payout(
        self,
        conn: Connection,
        purpose: str,
        mint: str,
        plan: PayoutPlan,
        ks: Keyset,
        start: int,
        v3: bool,
    ) -> int:
        now = int(time.time())
        cur = conn.execute(
            "INSERT INTO wallet_payouts (purpose, mint, amount_sat, state, v3, keyset_id,"
            " counter_start, send_amounts, change_amounts, fee_sat, debit_msat, created_at,"
            " updated_at, instance) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                purpose,
                mint,
                plan.amount,
                int(v3),
                ks.id,
                start,
                orjson.dumps(plan.send).decode(),
                orjson.dumps(plan.change).decode(),
                plan.fee_sat,
                (plan.amount + plan.fee_sat) * 1000,  # what the debit took, refunded on failure
                now,
                now,
                self._db.instance,
            ),
        )
        return int(cur.lastrowid or 0)

    def _commit_payout(
        self, payout_id: int, ks: Keyset, outputs: list[Output], sigs: list[BlindSignature]
    ) -> str:
        row = self._db.query_one("SELECT * FROM wallet_payouts WHERE id = ?", (payout_id,))
        assert row is not None
        made = make_proofs(ks, outputs, sigs)
        n_send = len(orjson.loads(row["send_amounts"]))
        token = _serialize(row["mint"], [n.proof for n in made[:n_send]], bool(row["v3"]))
        with self._db.transaction() as conn:
            if not conn.execute(  # only a pending payout: another instance may have settled it
                "UPDATE wallet_payouts SET state = 'done', token = ?, updated_at = ?"
                " WHERE id = ? AND state = 'pending'",
                (token, int(time.time()), payout_id),
            ).rowcount:
                return str(self.payout(row["purpose"]) or "")
            self._insert_proofs(conn, row["mint"], made[n_send:], origin=f"change:{row['purpose']}")
            conn.execute(
                "UPDATE wallet_proofs SET state = 'spent' WHERE payout_id = ?", (payout_id,)
            )
        self._events.paid_out(row["mint"], sum(n.proof.amount for n in made[:n_send]) * 1000)
        return token

    async def _settle_earlier_payout(self, purpose: str) -> str | None:
        """The token of a finished payout; settle a pending one first (None if it failed)."""
        row = self._db.query_one(
            "SELECT * FROM wallet_payouts WHERE purpose = ? AND state != 'failed'", (purpose,)
        )
        if row is None:
            return None
        if row["state"] == "pending":
            if not self._ours_or_orphan(row["instance"]):
                raise PayoutPending(f"payout {purpose!r} is being settled by another instance")
            async with self._lock(row["mint"]):
                try:
                    await self._resolve_payout(row["id"])
                except MintUnavailable as e:
                    raise PayoutPending(f"payout {purpose!r} is pending: {e}") from e
        return self.payout(purpose)

    def _failed(self, payout_id: int) -> bool:
        row = self._db.query_one("SELECT state FROM wallet_payouts WHERE id = ?", (payout_id,))
        return row is not None and row["state"] == "failed"

    async def _try_resolve(self, payout_id: int) -> None:
        with contextlib.suppress(MintUnavailable, MintError):  # stays pending for recover()
            await self._resolve_payout(payout_id)

    async def _resolve_payout(self, payout_id: int) -> None:
        row = self._db.query_one("SELECT * FROM wallet_payouts WHERE id = ?", (payout_id,))
        if row is None or row["state"] != "pending":
            return
        client = self._client(row["mint"])
        ks = await self._stored_keyset(client, row["keyset_id"])
        amounts = orjson.loads(row["send_amounts"]) + orjson.loads(row["change_amounts"])
        outputs = build_outputs(self._deriver, ks, row["counter_start"], amounts)
        signed = await client.restore([o.message for o in outputs])
        if signed:
            if len(signed) != len(outputs):
                raise MintError(None, f"payout {payout_id}: the mint restored only part of it")
            self._commit_payout(payout_id, ks, outputs, [signed[o.message.b_] for o in outputs])
            return
        inputs = self._db.query("SELECT y FROM wallet_proofs WHERE payout_id = ?", (payout_id,))
        states = await client.checkstate([r["y"] for r in inputs])
        if any(s == "PENDING" for s in states.values()):
            raise MintUnavailable("the mint still has this payout's swap in progress")
        self._roll_back(payout_id, states)

    def _roll_back(self, payout_id: int, states: dict[str, str]) -> None:
        """Fail the payout: inputs the mint calls spent stay spent, the rest are ours again."""
        row = self._db.query_one("SELECT * FROM wallet_payouts WHERE id = ?", (payout_id,))
        assert row is not None
        inputs = self._db.query("SELECT y FROM wallet_proofs WHERE payout_id = ?", (payout_id,))
        with self._db.transaction() as conn:
            if not conn.execute(  # refund once, whoever gets here first
                "UPDATE wallet_payouts SET state = 'failed', updated_at = ?"
                " WHERE id = ? AND state = 'pending'",
                (int(time.time()), payout_id),
            ).rowcount:
                return
            for r in inputs:  # spent without signing for us = lost elsewhere; keep the rest
                spent = states.get(r["y"]) == "SPENT"
                conn.execute(
                    "UPDATE wallet_proofs SET state = ?, payout_id = ? WHERE y = ?",
                    ("spent" if spent else "unspent", payout_id if spent else None, r["y"]),
                )
            debited = row["debit_msat"]  # None: a row from before fees were debited
            self._refund(
                conn, row["purpose"], row["amount_sat"] * 1000 if debited is None else debited
            )


def _proof(row: Row) -> Proof:
    return Proof(row["amount"], row["keyset_id"], row["secret"], row["c"], dleq_of(row["dleq"]))


def _serialize(mint: str, proofs: list[Proof], v3: bool) -> str:
    """The token paid out, with each proof's DLEQ (NUT-12: wallets may require it)."""
    token = Token(mint=mint, proofs=proofs, unit="sat")
    return serialize_v3(token, include_dleq=True) if v3 else serialize_v4(token, include_dleq=True)
