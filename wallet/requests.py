"""Payment requests: NUT-18 `creqA` (base64url CBOR) and NUT-26 `creqB` (Bech32m TLV).

The node answers an unpaid call with `402` and a `creqA` in `X-Cashu` (NUT-24); `creqB` is the
QR-friendly form of the same request. `parse_request` accepts either and raises `TokenInvalid`
on anything malformed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cbor2

from wallet import bech32
from wallet.errors import TokenInvalid
from wallet.tokens import b64decode, b64encode

Tags = list[list[str]]


@dataclass(frozen=True)
class Transport:
    type: str  # "nostr" | "post"
    target: str  # nprofile/npub, or the URL
    tags: Tags | None = None


@dataclass(frozen=True)
class Nut10:
    kind: str  # "P2PK" | "HTLC" | …
    data: str
    tags: Tags | None = None


@dataclass(frozen=True)
class PaymentRequest:
    id: str | None = None
    amount: int | None = None
    unit: str | None = None
    single_use: bool | None = None
    mints: list[str] | None = None
    description: str | None = None
    transports: list[Transport] = field(default_factory=list)
    nut10: Nut10 | None = None

    def encode(self) -> str:
        return encode_creq_a(self)


def parse_request(text: str) -> PaymentRequest:
    try:
        text = text.strip()
        if text[:5].lower() == "creqa":
            return _from_cbor(cbor2.loads(b64decode(text[5:])))
        if text[:6].lower() == "creqb1":
            return _from_tlv(text)
    except TokenInvalid:
        raise
    except Exception as e:  # any decoder failure on hostile input means "malformed"
        raise TokenInvalid(f"malformed payment request: {type(e).__name__}") from None
    raise TokenInvalid("not a payment request (expected creqA… or creqB1…)")


# --- NUT-18: CBOR ---


def encode_creq_a(req: PaymentRequest) -> str:
    obj: dict[str, Any] = {}
    if req.transports:
        obj["t"] = [_drop_none({"t": t.type, "a": t.target, "g": t.tags}) for t in req.transports]
    obj.update({"i": req.id, "a": req.amount, "u": req.unit, "m": req.mints})
    obj.update({"d": req.description, "s": req.single_use})
    if req.nut10 is not None:
        obj["nut10"] = _drop_none({"k": req.nut10.kind, "d": req.nut10.data, "t": req.nut10.tags})
    return "creqA" + b64encode(cbor2.dumps(_drop_none(obj)))


def _drop_none(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if v is not None}


def _opt(obj: dict[str, Any], key: str, kind: type) -> Any:
    value = obj.get(key)
    if value is None or value is cbor2.undefined:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TokenInvalid(f"malformed payment request: {key}")
    return value


def _tags(value: Any) -> Tags | None:
    if value is None or value is cbor2.undefined:
        return None
    if not isinstance(value, list) or not all(
        isinstance(t, list) and t and all(isinstance(x, str) for x in t) for t in value
    ):
        raise TokenInvalid("malformed payment request: tags")
    return [list(t) for t in value]


def _from_cbor(obj: Any) -> PaymentRequest:
    if not isinstance(obj, dict):
        raise TokenInvalid("malformed payment request")
    transports = []
    for t in _opt(obj, "t", list) or []:
        if not isinstance(t, dict):
            raise TokenInvalid("malformed payment request: transport")
        transports.append(Transport(_opt(t, "t", str), _opt(t, "a", str), _tags(t.get("g"))))
    n10 = _opt(obj, "nut10", dict)
    mints = _opt(obj, "m", list)
    if mints is not None and not all(isinstance(m, str) for m in mints):
        raise TokenInvalid("malformed payment request: mints")
    return PaymentRequest(
        id=_opt(obj, "i", str),
        amount=_opt(obj, "a", int),
        unit=_opt(obj, "u", str),
        single_use=_opt(obj, "s", bool),
        mints=mints,
        description=_opt(obj, "d", str),
        transports=transports,
        nut10=None if n10 is None else Nut10(n10["k"], n10["d"], _tags(n10.get("t"))),
    )


# --- NUT-26: TLV in Bech32m ---

_TRANSPORT_KINDS = {"nostr": 0, "post": 1}
_NUT10_KINDS = {"P2PK": 0, "HTLC": 1}


def _tlv(tag: int, value: bytes, wide: bool = True) -> bytes:
    return bytes([tag]) + len(value).to_bytes(2 if wide else 1, "big") + value


def _tag_tuple(tag: list[str]) -> bytes:
    return b"".join(_tlv(0, s.encode(), wide=False)[1:] for s in tag)


def _sub_tlv(kind: int, target: bytes, tags: Tags) -> bytes:
    out = _tlv(1, bytes([kind])) + _tlv(2, target)
    return out + b"".join(_tlv(3, _tag_tuple(t)) for t in tags)


def encode_creq_b(req: PaymentRequest) -> str:
    out = b""
    if req.id is not None:
        out += _tlv(1, req.id.encode())
    if req.amount is not None:
        out += _tlv(2, req.amount.to_bytes(8, "big"))
    if req.unit is not None:
        out += _tlv(3, b"\x00" if req.unit == "sat" else req.unit.encode())
    if req.single_use is not None:
        out += _tlv(4, bytes([int(req.single_use)]))
    for mint in req.mints or []:
        out += _tlv(5, mint.encode())
    if req.description is not None:
        out += _tlv(6, req.description.encode())
    for t in req.transports:
        tags = list(t.tags or [])
        if t.type == "nostr":
            pubkey, relays = bech32.decode_nostr(t.target)
            target, tags = pubkey, tags + [["r", relay] for relay in relays]
        else:
            target = t.target.encode()
        out += _tlv(7, _sub_tlv(_TRANSPORT_KINDS[t.type], target, tags))
    if req.nut10 is not None:
        kind = _NUT10_KINDS[req.nut10.kind]
        out += _tlv(8, _sub_tlv(kind, req.nut10.data.encode(), req.nut10.tags or []))
    return bech32.encode("creqb", out).upper()


def _read_tlv(data: bytes) -> list[tuple[int, bytes]]:
    items, i = [], 0
    while i < len(data):
        if i + 3 > len(data):
            raise TokenInvalid("malformed payment request: truncated TLV")
        tag, length = data[i], int.from_bytes(data[i + 1 : i + 3], "big")
        value = data[i + 3 : i + 3 + length]
        if len(value) != length:
            raise TokenInvalid("malformed payment request: truncated TLV")
        items.append((tag, value))
        i += 3 + length
    return items


def _read_tag_tuple(data: bytes) -> list[str]:
    parts, i = [], 0
    while i < len(data):
        length = data[i]
        if i + 1 + length > len(data):
            raise TokenInvalid("malformed payment request: truncated tag")
        parts.append(data[i + 1 : i + 1 + length].decode())
        i += 1 + length
    return parts


def _read_sub(data: bytes) -> tuple[int, bytes, Tags]:
    kind, target, tags = -1, b"", []
    for tag, value in _read_tlv(data):
        if tag == 1 and len(value) == 1:
            kind = value[0]
        elif tag == 2:
            target = value
        elif tag == 3:
            tags.append(_read_tag_tuple(value))
    return kind, target, tags


def _transport(data: bytes) -> Transport:
    kind, target, tags = _read_sub(data)
    if kind == 0:
        relays = [r for t in tags if t[0] == "r" for r in t[1:]]
        rest = [t for t in tags if t[0] != "r"]
        return Transport("nostr", bech32.encode_nostr(target, relays), rest or None)
    if kind == 1:
        return Transport("post", target.decode(), tags or None)
    raise TokenInvalid(f"malformed payment request: transport kind {kind}")


def _from_tlv(text: str) -> PaymentRequest:
    hrp, data = bech32.decode(text, bech32.BECH32M)
    if hrp != "creqb":
        raise TokenInvalid("malformed payment request: prefix")
    f: dict[str, Any] = {"mints": [], "transports": []}
    for tag, value in _read_tlv(data):
        if tag == 1:
            f["id"] = value.decode()
        elif tag == 2:
            f["amount"] = int.from_bytes(value, "big")
        elif tag == 3:
            f["unit"] = "sat" if value == b"\x00" else value.decode()
        elif tag == 4:
            f["single_use"] = bool(value[0])
        elif tag == 5:
            f["mints"].append(value.decode())
        elif tag == 6:
            f["description"] = value.decode()
        elif tag == 7:
            f["transports"].append(_transport(value))
        elif tag == 8:
            kind, target, tags = _read_sub(value)
            names = {v: k for k, v in _NUT10_KINDS.items()}
            f["nut10"] = Nut10(names.get(kind, str(kind)), target.decode(), tags or None)
    f["mints"] = f["mints"] or None
    return PaymentRequest(**f)
