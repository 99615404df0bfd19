"""Cashu tokens (NUT-00): `cashuA` (V3, base64url JSON) and `cashuB` (V4, base64url CBOR).

`parse_token` turns any string into a `Token` or raises `TokenInvalid` — never anything else,
whatever the input. V4 tokens of keyset-v2 mints carry 8-byte short keyset ids; the wallet maps
them to full ids against the mint's /v1/keysets (`Token.keyset_ids` shows what was sent).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field, replace
from typing import Any

import cbor2
import orjson

from wallet.errors import TokenInvalid

MAX_PROOFS = 1000
MAX_AMOUNT = 21_000_000 * 100_000_000  # every bitcoin there is, in sat: its msat fit in 64 bits
MAX_SECRET_LEN = 1024
_HEX = re.compile(r"^[0-9a-f]*$")


@dataclass(frozen=True)
class Dleq:
    e: str
    s: str
    r: str | None = None


def dleq_text(dleq: Dleq | None) -> str | None:
    """A DLEQ with its blinding factor as the wallet stores it: "e s r" in hex."""
    if dleq is None or dleq.r is None:
        return None
    return f"{dleq.e} {dleq.s} {dleq.r}"


def dleq_of(text: str | None) -> Dleq | None:
    """The DLEQ `dleq_text` stored (None for a proof stored without one)."""
    if not text:
        return None
    e, s, r = text.split()
    return Dleq(e, s, r)


@dataclass(frozen=True)
class Proof:
    amount: int
    keyset_id: str
    secret: str
    c: str
    dleq: Dleq | None = None
    witness: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The NUT-00 JSON of the proof, as sent to a mint (no DLEQ)."""
        out: dict[str, Any] = {"amount": self.amount, "id": self.keyset_id}
        out.update(secret=self.secret, C=self.c)
        if self.witness is not None:
            out["witness"] = self.witness
        return out


@dataclass(frozen=True)
class Token:
    mint: str
    proofs: list[Proof]
    unit: str = "sat"
    memo: str | None = None
    keyset_ids: list[str] = field(default_factory=list)

    @property
    def amount(self) -> int:
        return sum(p.amount for p in self.proofs)

    def with_proofs(self, proofs: list[Proof]) -> Token:
        return replace(self, proofs=proofs)

    def with_mint(self, mint: str) -> Token:
        return replace(self, mint=mint)

    def with_unit(self, unit: str) -> Token:
        return replace(self, unit=unit)


def b64decode(data: str) -> bytes:
    """base64 or base64url, padding optional (NUT-00 asks clients to accept both)."""
    data = data.strip().replace("+", "-").replace("/", "_").rstrip("=")
    if not re.fullmatch(r"[A-Za-z0-9_-]*", data):
        raise ValueError("not base64")
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def parse_token(text: str) -> Token:
    if not isinstance(text, str):
        raise TokenInvalid("token must be a string")
    text = text.strip()
    if text.startswith("cashu:"):
        text = text[len("cashu:") :]
    try:
        if text.startswith("cashuA"):
            return _parse_v3(orjson.loads(b64decode(text[6:])))
        if text.startswith("cashuB"):
            return _parse_v4(cbor2.loads(b64decode(text[6:])))
    except TokenInvalid:
        raise
    except Exception as e:  # hostile bytes upset decoders in many ways; all mean "malformed"
        raise TokenInvalid(f"malformed token: {type(e).__name__}") from None
    raise TokenInvalid("not a Cashu token (expected cashuA… or cashuB…)")


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise TokenInvalid(f"malformed token: {what}")


def _amount(value: Any) -> int:
    _check(type(value) is int and 0 < value < 2**64, "bad amount")
    return int(value)


def _str(value: Any, what: str, limit: int = 4096) -> str:
    _check(isinstance(value, str) and 0 < len(value) <= limit, what)
    return str(value)


def _hex(value: Any, what: str, sizes: tuple[int, ...]) -> str:
    if isinstance(value, bytes):
        value = value.hex()
    _check(isinstance(value, str) and _HEX.match(value) is not None, what)
    _check(len(value) // 2 in sizes and len(value) % 2 == 0, what)
    return str(value)


def _opt_str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    _check(value is None or isinstance(value, str), key)
    return value


def _dleq(raw: Any) -> Dleq | None:
    if raw is None:
        return None
    _check(isinstance(raw, dict), "dleq")
    r = raw.get("r")
    return Dleq(
        e=_hex(raw.get("e"), "dleq e", (32,)),
        s=_hex(raw.get("s"), "dleq s", (32,)),
        r=None if r is None else _hex(r, "dleq r", (32,)),
    )


def _proof(keyset_id: str, amount: Any, secret: Any, c: Any, dleq: Any, witness: Any) -> Proof:
    _check(witness is None or isinstance(witness, str), "witness")
    return Proof(
        amount=_amount(amount),
        keyset_id=keyset_id,
        secret=_str(secret, "secret", MAX_SECRET_LEN),
        c=_hex(c, "C", (33,)),
        dleq=_dleq(dleq),
        witness=witness,
    )


def _keyset_id(value: Any) -> str:
    return _hex(value, "keyset id", (8, 33))


def _finish(mint: str, proofs: list[Proof], unit: str, memo: str | None) -> Token:
    _check(0 < len(proofs) <= MAX_PROOFS, "proof count")
    _check(sum(p.amount for p in proofs) <= MAX_AMOUNT, "amount")
    ids = list(dict.fromkeys(p.keyset_id for p in proofs))
    return Token(mint=mint, proofs=proofs, unit=unit, memo=memo, keyset_ids=ids)


def _parse_v3(obj: Any) -> Token:
    _check(isinstance(obj, dict) and isinstance(obj.get("token"), list), "token list")
    mints: set[str] = set()
    proofs: list[Proof] = []
    for entry in obj["token"]:
        _check(isinstance(entry, dict) and isinstance(entry.get("proofs"), list), "entry")
        mints.add(_str(entry.get("mint"), "mint"))
        for p in entry["proofs"]:
            _check(isinstance(p, dict), "proof")
            kid = _keyset_id(p.get("id"))
            proofs.append(
                _proof(
                    kid,
                    p.get("amount"),
                    p.get("secret"),
                    p.get("C"),
                    p.get("dleq"),
                    p.get("witness"),
                )
            )
    _check(len(mints) == 1, "exactly one mint per token")
    unit = _opt_str(obj, "unit") or "sat"
    return _finish(mints.pop(), proofs, unit, _opt_str(obj, "memo"))


def _parse_v4(obj: Any) -> Token:
    _check(isinstance(obj, dict) and isinstance(obj.get("t"), list), "token list")
    proofs: list[Proof] = []
    for entry in obj["t"]:
        _check(isinstance(entry, dict) and isinstance(entry.get("p"), list), "entry")
        _check(isinstance(entry.get("i"), bytes), "keyset id")
        kid = _keyset_id(entry["i"])
        for p in entry["p"]:
            _check(isinstance(p, dict), "proof")
            _check(isinstance(p.get("c"), bytes), "C")
            d = p.get("d")
            if isinstance(d, dict):
                d = {k: v.hex() if isinstance(v, bytes) else v for k, v in d.items()}
            proofs.append(_proof(kid, p.get("a"), p.get("s"), p.get("c"), d, p.get("w")))
    unit = _str(obj.get("u"), "unit", 32)
    return _finish(_str(obj.get("m"), "mint"), proofs, unit, _opt_str(obj, "d"))


def serialize_v3(token: Token, include_dleq: bool = False) -> str:
    proofs = []
    for p in token.proofs:
        item = p.to_json()
        if include_dleq and p.dleq is not None:
            item["dleq"] = {k: v for k, v in vars(p.dleq).items() if v is not None}
        proofs.append(item)
    obj: dict[str, Any] = {"token": [{"mint": token.mint, "proofs": proofs}], "unit": token.unit}
    if token.memo is not None:
        obj["memo"] = token.memo
    return "cashuA" + b64encode(orjson.dumps(obj))


def short_keyset_id(keyset_id: str) -> str:
    """V4 tokens carry keyset-v2 ids shortened to their first 8 bytes (NUT-02)."""
    return keyset_id[:16] if keyset_id.startswith("01") else keyset_id


def serialize_v4(token: Token, include_dleq: bool = False) -> str:
    groups: dict[str, list[dict[str, Any]]] = {}
    for p in token.proofs:
        item: dict[str, Any] = {"a": p.amount, "s": p.secret, "c": bytes.fromhex(p.c)}
        if include_dleq and p.dleq is not None:
            item["d"] = {k: bytes.fromhex(v) for k, v in vars(p.dleq).items() if v is not None}
        if p.witness is not None:
            item["w"] = p.witness
        groups.setdefault(short_keyset_id(p.keyset_id), []).append(item)
    obj: dict[str, Any] = {
        "t": [{"i": bytes.fromhex(kid), "p": items} for kid, items in groups.items()]
    }
    if token.memo is not None:
        obj["d"] = token.memo
    obj["m"] = token.mint
    obj["u"] = token.unit
    return "cashuB" + b64encode(cbor2.dumps(obj))
