"""Amounts, fees, deterministic outputs and the proofs made from the mint's signatures."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from wallet import crypto
from wallet.errors import MintError, TokenInvalid
from wallet.keysets import Keyset
from wallet.mint_client import BlindedMessage, BlindSignature
from wallet.tokens import Dleq, Proof


def split_amount(amount: int, denominations: Sequence[int]) -> list[int]:
    """Largest denominations first (powers of two on every mint we know), ascending order."""
    parts: list[int] = []
    for d in sorted(denominations, reverse=True):
        while amount >= d:
            parts.append(d)
            amount -= d
    if amount:
        raise MintError(
            None, f"amount cannot be made of the keyset's denominations (rest {amount})"
        )
    return sorted(parts)


def spread_amount(amount: int, denominations: Sequence[int]) -> list[int]:
    """`amount` as 1, 2, 4, … for as long as they fit, then the rest largest first: every whole
    amount up to `amount` is then the sum of some of the parts, so change of any size can be
    paid from them as they are, without another swap. About twice as many parts as
    `split_amount`."""
    parts: list[int] = []
    covered = 0  # every amount in 0..covered is a sum of some parts
    for d in sorted(denominations):
        if d > covered + 1 or covered + d > amount:
            break
        parts.append(d)
        covered += d
    return sorted(parts + split_amount(amount - covered, denominations))


def input_fee(keyset_ppks: Iterable[int]) -> int:
    """NUT-02: the sum of each input's fee in ppk, rounded up to a whole unit."""
    return (sum(keyset_ppks) + 999) // 1000


@dataclass(frozen=True)
class Output:
    message: BlindedMessage
    secret: str
    r: int
    y: str


def build_outputs(
    deriver: crypto.Deriver, keyset: Keyset, counter_start: int, amounts: Sequence[int]
) -> list[Output]:
    """One NUT-13 output per amount, counters counter_start, counter_start+1, …"""
    outputs = []
    for i, amount in enumerate(amounts):
        secret_bytes, r = deriver.derive(keyset.id, counter_start + i)
        secret = secret_bytes.hex()
        y = crypto.hash_to_curve(secret.encode())
        b_ = y.add(r.to_bytes(32, "big"))
        message = BlindedMessage(amount, keyset.id, b_.format(compressed=True).hex())
        outputs.append(Output(message, secret, r, y.format(compressed=True).hex()))
    return outputs


@dataclass(frozen=True)
class NewProof:
    proof: Proof
    y: str


def make_proofs(
    keyset: Keyset, outputs: Sequence[Output], sigs: Sequence[BlindSignature]
) -> list[NewProof]:
    """Unblind the signatures (in the order of `outputs`), verifying each DLEQ the mint sent."""
    keys = keyset.keys or {}
    made = []
    for out, sig in zip(outputs, sigs, strict=True):
        if sig.amount != out.message.amount or sig.keyset_id != keyset.id:
            raise MintError(None, "signature does not match its output")
        key = keys.get(sig.amount)
        if key is None:
            raise MintError(None, f"no key for amount {sig.amount}")
        try:
            c_ = crypto.point(sig.c_)
            dleq = None
            if sig.dleq_e is not None and sig.dleq_s is not None:
                e, s = int(sig.dleq_e, 16), int(sig.dleq_s, 16)
                ok = crypto.verify_dleq(crypto.point(out.message.b_), c_, e, s, key)
                dleq = Dleq(sig.dleq_e, sig.dleq_s, f"{out.r:064x}") if ok else None
                if not ok:
                    raise MintError(None, "the mint's DLEQ proof does not verify")
        except ValueError:
            raise MintError(None, "malformed signature from the mint") from None
        c = crypto.unblind(c_, out.r, key).format(compressed=True).hex()
        proof = Proof(sig.amount, keyset.id, out.secret, c, dleq)
        made.append(NewProof(proof, out.y))
    return made


def verify_token_dleq(proof: Proof, keyset: Keyset) -> None:
    """NUT-12: a DLEQ included in a received proof must verify (needs r, else it is skipped)."""
    if proof.dleq is None or proof.dleq.r is None:
        return
    key = (keyset.keys or {}).get(proof.amount)
    if key is None:
        raise TokenInvalid(f"no key for amount {proof.amount} in keyset {keyset.id}")
    try:
        c = crypto.point(proof.c)
        e, s, r = (int(v, 16) for v in (proof.dleq.e, proof.dleq.s, proof.dleq.r))
        ok = crypto.verify_proof_dleq(proof.secret.encode(), c, e, s, r, key)
    except ValueError:
        ok = False
    if not ok:
        raise TokenInvalid("a proof's DLEQ does not verify")


def y_of(secret: str) -> str:
    return crypto.hash_to_curve(secret.encode()).format(compressed=True).hex()
