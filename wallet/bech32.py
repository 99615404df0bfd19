"""Bech32 / Bech32m (BIP-173, BIP-350) and the NIP-19 `npub` / `nprofile` forms NUT-26 needs.

No length limit: NUT-26 payment requests are far longer than BIP-173's 90 characters.
"""

from __future__ import annotations

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
BECH32, BECH32M = 1, 0x2BC830A3
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= _GEN[i] if (top >> i) & 1 else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(x) >> 5 for x in hrp] + [0] + [ord(x) & 31 for x in hrp]


def _convert(data: list[int] | bytes, frm: int, to: int, pad: bool) -> list[int]:
    acc = bits = 0
    out: list[int] = []
    maxv = (1 << to) - 1
    for value in data:
        if value < 0 or value >> frm:
            raise ValueError("bad data value")
        acc = (acc << frm) | value
        bits += frm
        while bits >= to:
            bits -= to
            out.append((acc >> bits) & maxv)
    if pad and bits:
        out.append((acc << (to - bits)) & maxv)
    elif not pad and (bits >= frm or (acc << (to - bits)) & maxv):
        raise ValueError("bad padding")
    return out


def encode(hrp: str, data: bytes, const: int = BECH32M) -> str:
    values = _convert(data, 8, 5, True)
    check = _polymod([*_hrp_expand(hrp), *values, 0, 0, 0, 0, 0, 0]) ^ const
    checksum = [(check >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[d] for d in values + checksum)


def decode(text: str, const: int = BECH32M) -> tuple[str, bytes]:
    """(hrp, data); ValueError on mixed case, a bad character or a bad checksum."""
    hrp, values = decode_words(text, const)
    return hrp, bytes(_convert(values, 5, 8, False))


def decode_words(text: str, const: int = BECH32) -> tuple[str, list[int]]:
    """(hrp, the 5-bit words before the checksum): BOLT-11's data is read word by word."""
    if text.lower() != text and text.upper() != text:
        raise ValueError("mixed case")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text):
        raise ValueError("no separator")
    hrp = text[:pos]
    try:
        values = [CHARSET.index(c) for c in text[pos + 1 :]]
    except ValueError:
        raise ValueError("bad character") from None
    if _polymod(_hrp_expand(hrp) + values) != const:
        raise ValueError("bad checksum")
    return hrp, values[:-6]


def words_to_bytes(words: list[int]) -> bytes:
    """5-bit words as bytes, the last partial byte dropped (BOLT-11 tagged fields)."""
    acc = bits = 0
    out = bytearray()
    for w in words:
        acc = (acc << 5) | w
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    return bytes(out)


def encode_nostr(pubkey: bytes, relays: list[str]) -> str:
    """`npub` without relays, else `nprofile` (NIP-19 TLV: 0 = pubkey, 1 = relay)."""
    if not relays:
        return encode("npub", pubkey, BECH32)
    tlv = bytes([0, len(pubkey)]) + pubkey
    for relay in relays:
        raw = relay.encode()
        tlv += bytes([1, len(raw)]) + raw
    return encode("nprofile", tlv, BECH32)


def decode_nostr(text: str) -> tuple[bytes, list[str]]:
    """(32-byte pubkey, relays) of an `npub` or `nprofile`."""
    hrp, data = decode(text, BECH32)
    if hrp == "npub" and len(data) == 32:
        return data, []
    if hrp != "nprofile":
        raise ValueError("not an npub or nprofile")
    pubkey, relays, i = b"", [], 0
    while i + 2 <= len(data):
        kind, length = data[i], data[i + 1]
        value = data[i + 2 : i + 2 + length]
        if len(value) != length:
            raise ValueError("truncated nprofile")
        if kind == 0:
            pubkey = value
        elif kind == 1:
            relays.append(value.decode())
        i += 2 + length
    if len(pubkey) != 32:
        raise ValueError("nprofile without a pubkey")
    return pubkey, relays
