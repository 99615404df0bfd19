"""Receiving: a token becomes fresh proofs of ours and a credit, in one transaction.

1. Parse; refuse an untrusted mint or a unit other than sat before any network contact.
2. Transaction: allocate NUT-13 counters, write a `wallet_swaps` row (purpose, outputs, inputs).
3. Swap at the mint (the only network call in the steady state).
4. Transaction: store the new proofs, delete the swap row, record the credit, call `credit()`.

A crash, a lost or a garbled answer between 3 and 4 leaves the swap row; `_resolve_swap` (from
`recover()`, a retry of the same purpose, or at once after a garbled answer) asks the mint to
re-sign our deterministic outputs (NUT-09 restore) and finishes step 4, or drops the row if the
mint signed nothing.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import orjson

from wallet.core import Receipt, WalletCore
from wallet.errors import (
    AlreadyCredited,
    MintAnswerGarbled,
    MintError,
    MintUnavailable,
    TokenInvalid,
    UnsupportedUnit,
)
from wallet.keysets import Keyset
from wallet.mint_client import BlindSignature
from wallet.outputs import (
    Output,
    build_outputs,
    input_fee,
    make_proofs,
    split_amount,
    spread_amount,
    verify_token_dleq,
    y_of,
)
from wallet.store import IntegrityError, Row, allocate_counter
from wallet.tokens import Proof, Token, parse_token

# Refusals that blame the token's proofs (NUT error codes; 0 is Nutshell's "anything else",
# e.g. a C that is no point): the client's bad token, not a failing mint.
INPUT_ERRORS = {0, 10001, 11002, 11004, 11007, 11009, 11010}
RACE_RETRIES = 3
OTHER_POLL_S = 0.05


class _Raced(Exception):
    """Another node instance wrote a swap for this purpose first."""


@dataclass(frozen=True)
class PendingSwap:
    id: int
    purpose: str
    mint: str
    keyset_id: str
    counter_start: int
    amounts: list[int]
    input_ys: list[str]
    fee_msat: int


def _verify_dleqs(proofs: list[Proof], keyset: Callable[[str], Keyset]) -> None:
    for proof in proofs:
        verify_token_dleq(proof, keyset(proof.keyset_id))


class Receiver(WalletCore):
    async def receive(self, token: str, purpose: str, *, keep_at_most: int = 0) -> Receipt:
        """Redeem `token` and credit `purpose` with sum(inputs) - fee, in msat.

        `keep_at_most` (sat): for a token whose change follows at once (X-Cashu), ask the mint
        for denominations such that whatever part of it up to this is kept, the rest is a set of
        the new proofs, paid back as they are with no second swap (`spread_amount`)."""
        tok = parse_token(token)
        mint = self._trusted_url(tok.mint)
        if tok.unit != "sat":
            raise UnsupportedUnit(tok.unit)
        async with self._lock(mint):
            for _ in range(RACE_RETRIES):
                await self._settle_earlier(purpose)
                try:
                    return await self._redeem(tok, mint, purpose, keep_at_most)
                except _Raced:
                    continue  # another node instance began the same purpose: wait for it
            raise MintUnavailable("another node instance is redeeming this token; retry")

    async def _redeem(self, tok: Token, mint: str, purpose: str, keep_at_most: int) -> Receipt:
        client = self._client(mint)
        keysets = await self._keysets.resolve(client, tok.keyset_ids)
        proofs = [replace(p, keyset_id=keysets[p.keyset_id].id) for p in tok.proofs]
        for ks in {k.id: k for k in keysets.values()}.values():
            keys = await self._keysets.load_keys(client, ks)
            # an amount no key signs is refused here: a claimed 2**40 at a mint whose keys stop
            # at 2**15 would otherwise be split into 2**25 outputs before the mint said no
            if any(p.amount not in keys for p in proofs if p.keyset_id == ks.id):
                raise TokenInvalid(f"an amount keyset {ks.id} has no key for")
        signed = [p for p in proofs if p.dleq is not None and p.dleq.r is not None]
        if signed:  # elliptic-curve work, ~0.3 ms a proof: off the event loop
            await asyncio.to_thread(_verify_dleqs, signed, self._keysets.get)
        fee = input_fee(self._keysets.get(p.keyset_id).input_fee_ppk for p in proofs)
        amount = sum(p.amount for p in proofs) - fee
        if amount <= 0:
            raise TokenInvalid(f"token of {tok.amount} sat does not cover the mint's fee")
        out_ks = await self._keysets.active(client)
        spread = min(max(0, keep_at_most), amount)
        amounts = spread_amount(spread, out_ks.amounts) if spread else []
        amounts = sorted(amounts + split_amount(amount - spread, out_ks.amounts))
        ys = [y_of(p.secret) for p in proofs]
        if len(set(ys)) != len(ys):
            raise TokenInvalid("token repeats a proof")
        swap = self._begin_swap(purpose, mint, out_ks, amounts, ys, fee * 1000)
        outputs = build_outputs(self._deriver, out_ks, swap.counter_start, amounts)
        try:
            sigs = await client.swap(proofs, [o.message for o in outputs])
        except MintAnswerGarbled:
            # the mint has answered, so it is done: restore tells what it signed, now
            receipt = await self._settle_garbled(swap)
            if receipt is None:
                raise
            return receipt
        except MintUnavailable as e:
            if not e.maybe_sent:
                self._drop_swap(swap.id)
            raise  # else the outcome is unknown: the row stays for recover()
        except MintError as e:
            self._drop_swap(swap.id)
            if e.keyset_refused:
                self._keysets.mark_stale(mint)
            if e.code in INPUT_ERRORS:
                raise TokenInvalid(f"the mint refused it: {e.detail}") from e
            raise
        except Exception:  # TokenSpent and anything else: the mint signed nothing
            self._drop_swap(swap.id)
            raise
        self._checkpoint("receive-after-swap")
        return self._commit_receive(swap, out_ks, outputs, sigs)

    async def _settle_garbled(self, swap: PendingSwap) -> Receipt | None:
        """After a garbled swap answer: the receipt if the mint signed our outputs; None when
        that cannot be told yet (the row stays for a retry or recover())."""
        try:
            receipt = await self._resolve_swap(swap)
        except (MintUnavailable, MintError):
            return None
        if receipt is None:  # nothing signed, inputs not pending: the mint refused after all
            raise MintError(None, "the mint garbled its answer and swapped nothing")
        return receipt

    def claim_secret(self, token: str) -> str:
        """A hex secret only this node can compute, the same for the same proofs whatever the
        token's encoding: a retry of an interrupted redemption finds what the first one made."""
        ys = sorted({y_of(p.secret) for p in parse_token(token).proofs})
        return hmac.new(self._claim_key, ",".join(ys).encode(), "sha256").hexdigest()

    def _begin_swap(
        self, purpose: str, mint: str, ks: Keyset, amounts: list[int], ys: list[str], fee_msat: int
    ) -> PendingSwap:
        try:
            return self._insert_swap(purpose, mint, ks, amounts, ys, fee_msat)
        except IntegrityError as exc:  # purpose is unique: another instance's swap is in flight
            raise _Raced(purpose) from exc

    def _insert_swap(
        self, purpose: str, mint: str, ks: Keyset, amounts: list[int], ys: list[str], fee_msat: int
    ) -> PendingSwap:
        with self._db.transaction() as conn:
            start = allocate_counter(conn, ks.id, len(amounts))
            cur = conn.execute(
                "INSERT INTO wallet_swaps (purpose, mint, keyset_id, counter_start, amounts,"
                " input_ys, amount_msat, fee_msat, created_at, instance)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    purpose,
                    mint,
                    ks.id,
                    start,
                    orjson.dumps(amounts).decode(),
                    orjson.dumps(ys).decode(),
                    sum(amounts) * 1000,
                    fee_msat,
                    int(time.time()),
                    self._db.instance,
                ),
            )
            swap_id = int(cur.lastrowid or 0)
        return PendingSwap(swap_id, purpose, mint, ks.id, start, amounts, ys, fee_msat)

    def _drop_swap(self, swap_id: int) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM wallet_swaps WHERE id = ?", (swap_id,))

    def _commit_receive(
        self, swap: PendingSwap, ks: Keyset, outputs: list[Output], sigs: list[BlindSignature]
    ) -> Receipt:
        made = make_proofs(ks, outputs, sigs)
        amount_msat = sum(n.proof.amount for n in made) * 1000
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM wallet_swaps WHERE id = ?", (swap.id,))
            done = conn.execute(
                "SELECT * FROM wallet_credits WHERE purpose = ?", (swap.purpose,)
            ).fetchone()
            if done is not None:  # another instance restored and credited these outputs first
                return _receipt(done)
            self._insert_proofs(conn, swap.mint, made, origin=f"receive:{swap.purpose}")
            conn.execute(
                "INSERT INTO wallet_credits (purpose, amount_msat, fee_msat, mint, unit,"
                " created_at) VALUES (?, ?, ?, ?, 'sat', ?)",
                (swap.purpose, amount_msat, swap.fee_msat, swap.mint, int(time.time())),
            )
            self._credit(conn, swap.purpose, amount_msat, swap.mint)
        self._events.redeemed(swap.mint, amount_msat)
        return Receipt(amount_msat, swap.fee_msat, swap.mint, "sat")

    def credited(self, purpose: str) -> Receipt | None:
        """The receipt of a purpose already credited, if any."""
        row = self._db.query_one("SELECT * FROM wallet_credits WHERE purpose = ?", (purpose,))
        return None if row is None else _receipt(row)

    async def _settle_earlier(self, purpose: str) -> None:
        """Refuse a purpose already credited; finish an earlier attempt left pending first,
        or wait for one that another live node instance has in flight."""
        row = self._db.query_one("SELECT * FROM wallet_swaps WHERE purpose = ?", (purpose,))
        if row is not None and not self._ours_or_orphan(row["instance"]):
            await self._swap_done_elsewhere(row["id"])
        elif row is not None:
            await self._resolve_swap(_pending(row))
        receipt = self.credited(purpose)
        if receipt is not None:
            raise AlreadyCredited(f"purpose {purpose!r} was already credited", receipt)

    async def _swap_done_elsewhere(self, swap_id: int) -> None:
        """Wait while another live instance finishes a swap (it asks the mint once, with a
        timeout; a crash of it ends the wait too, leaving the row to us)."""
        deadline = time.monotonic() + 2 * self._timeout_s + 5
        while time.monotonic() < deadline:
            row = self._db.query_one("SELECT instance FROM wallet_swaps WHERE id = ?", (swap_id,))
            if row is None or self._ours_or_orphan(row["instance"]):
                return
            await asyncio.sleep(OTHER_POLL_S)
        raise MintUnavailable("another node instance is still redeeming this token; retry")

    async def _resolve_swap(self, swap: PendingSwap) -> Receipt | None:
        """Finish a swap whose answer was not stored: credit what the mint signed, exactly once."""
        client = self._client(swap.mint)
        ks = await self._stored_keyset(client, swap.keyset_id)
        outputs = build_outputs(self._deriver, ks, swap.counter_start, swap.amounts)
        signed = await client.restore([o.message for o in outputs])
        done = [(o, signed[o.message.b_]) for o in outputs if o.message.b_ in signed]
        if done:
            return self._commit_receive(swap, ks, [o for o, _ in done], [s for _, s in done])
        states = await client.checkstate(swap.input_ys)
        if any(s == "PENDING" for s in states.values()):
            raise MintUnavailable("the mint still has this swap in progress")
        # Nothing signed for us: the inputs are unspent (never redeemed) or spent by someone else.
        self._drop_swap(swap.id)
        return None


def _receipt(row: Row) -> Receipt:
    return Receipt(row["amount_msat"], row["fee_msat"], row["mint"], row["unit"])


def _pending(row: Row) -> PendingSwap:
    return PendingSwap(
        id=row["id"],
        purpose=row["purpose"],
        mint=row["mint"],
        keyset_id=row["keyset_id"],
        counter_start=row["counter_start"],
        amounts=orjson.loads(row["amounts"]),
        input_ys=orjson.loads(row["input_ys"]),
        fee_msat=row["fee_msat"],
    )
