"""BOLT-11 invoices, read (not verified: the mint that pays one checks its signature): the
amount, the payment hash, the expiry and the description hash, which is all the node checks
before it asks a mint to pay one or hands one to a client."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from wallet.bech32 import decode_words, words_to_bytes
from wallet.errors import TokenInvalid

# lnbc (mainnet), lntb (testnet), lntbs (signet), lnbcrt (regtest), lnsb (simnet)
_HRP = re.compile(r"^ln(bcrt|bc|tbs|tb|sb)(\d*)([munp]?)$")
_MULTIPLIER_MSAT = {"": 100_000_000_000, "m": 100_000_000, "u": 100_000, "n": 100}
SIGNATURE_WORDS = 104  # 65 bytes
DEFAULT_EXPIRY_S = 3600
MAX_LENGTH = 7089  # the longest an invoice may be (LNURL's limit, well above real ones)


@dataclass(frozen=True)
class Invoice:
    bolt11: str
    amount_msat: int | None  # None: an invoice without an amount
    payment_hash: str
    timestamp: int
    expiry_s: int
    description_hash: str | None

    @property
    def expires_at(self) -> int:
        return self.timestamp + self.expiry_s

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at


def decode(bolt11: str) -> Invoice:
    """The invoice's fields; TokenInvalid when it is not a BOLT-11 invoice."""
    text = bolt11.strip()
    if text.lower().startswith("lightning:"):
        text = text[len("lightning:") :]
    if len(text) > MAX_LENGTH:
        raise TokenInvalid("not a BOLT-11 invoice: too long")
    try:
        hrp, words = decode_words(text)
    except ValueError as exc:
        raise TokenInvalid(f"not a BOLT-11 invoice: {exc}") from None
    match = _HRP.match(hrp)
    if match is None or len(words) < 7 + SIGNATURE_WORDS:
        raise TokenInvalid("not a BOLT-11 invoice")
    amount_msat = _amount(match.group(2), match.group(3))
    timestamp = _int(words[:7])
    fields = _fields(words[7:-SIGNATURE_WORDS])
    payment_hash = fields.get("p")
    if payment_hash is None or len(payment_hash) != 52:
        raise TokenInvalid("BOLT-11 invoice without a payment hash")
    description_hash = fields.get("h")
    expiry = fields.get("x")
    return Invoice(
        bolt11=text.lower(),
        amount_msat=amount_msat,
        payment_hash=words_to_bytes(payment_hash).hex(),
        timestamp=timestamp,
        expiry_s=DEFAULT_EXPIRY_S if expiry is None else _int(expiry),
        description_hash=None
        if description_hash is None or len(description_hash) != 52
        else words_to_bytes(description_hash).hex(),
    )


def _amount(digits: str, multiplier: str) -> int | None:
    if not digits:
        return None
    if multiplier == "p":
        if int(digits) % 10:
            raise TokenInvalid("BOLT-11 amount is not a whole msat")
        return int(digits) // 10
    return int(digits) * _MULTIPLIER_MSAT[multiplier]


def _int(words: list[int]) -> int:
    value = 0
    for w in words:
        value = (value << 5) | w
    return value


def _fields(words: list[int]) -> dict[str, list[int]]:
    """The first of each tagged field (BOLT-11: a reader keeps the first it understands)."""
    charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
    fields: dict[str, list[int]] = {}
    i = 0
    while i + 3 <= len(words):
        tag = charset[words[i]]
        length = words[i + 1] * 32 + words[i + 2]
        fields.setdefault(tag, words[i + 3 : i + 3 + length])
        i += 3 + length
    return fields
