"""Cashu cryptography on secp256k1 (coincurve): BDHKE (NUT-00), DLEQ (NUT-12), keyset ids
(NUT-02), deterministic secrets (NUT-13).

Points travel as 33-byte compressed SEC1 bytes, scalars as ints. coincurve has no point negation,
so `_neg` flips the parity byte of the compressed encoding (-P has the same x, the other y).
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from collections.abc import Mapping

from coincurve import PrivateKey, PublicKey

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
DOMAIN_SEPARATOR = b"Secp256k1_HashToCurve_Cashu_"


def _scalar(k: int) -> bytes:
    return k.to_bytes(32, "big")


def _neg(p: PublicKey) -> PublicKey:
    raw = p.format(compressed=True)
    return PublicKey(bytes([raw[0] ^ 1]) + raw[1:])


def _mul(p: PublicKey, k: int) -> PublicKey:
    return p.multiply(_scalar(k % N))


def _sub(p: PublicKey, q: PublicKey) -> PublicKey:
    return PublicKey.combine_keys([p, _neg(q)])


def point(data: bytes | str) -> PublicKey:
    """A compressed point from bytes or hex; ValueError if it is not exactly that."""
    raw = bytes.fromhex(data) if isinstance(data, str) else data
    if len(raw) != 33 or raw[0] not in (2, 3):
        raise ValueError("not a compressed secp256k1 point")
    return PublicKey(raw)


def hash_to_curve(message: bytes) -> PublicKey:
    msg_hash = hashlib.sha256(DOMAIN_SEPARATOR + message).digest()
    for counter in range(2**16):
        digest = hashlib.sha256(msg_hash + counter.to_bytes(4, "little")).digest()
        try:
            return PublicKey(b"\x02" + digest)
        except ValueError:
            continue
    raise ValueError("no point found for message")  # pragma: no cover - probability ~2^-65536


def blind(secret: bytes, r: int) -> PublicKey:
    """B_ = Y + r*G."""
    return hash_to_curve(secret).add(_scalar(r))


def sign_blinded(k: int, b_: PublicKey) -> PublicKey:
    """C_ = k*B_ (the mint's side; used by the NUT-00 vectors and test doubles)."""
    return _mul(b_, k)


def unblind(c_: PublicKey, r: int, mint_key: PublicKey) -> PublicKey:
    """C = C_ - r*K."""
    return _sub(c_, _mul(mint_key, r))


def hash_e(*points: PublicKey) -> bytes:
    joined = "".join(p.format(compressed=False).hex() for p in points)
    return hashlib.sha256(joined.encode()).digest()


def verify_dleq(b_: PublicKey, c_: PublicKey, e: int, s: int, mint_key: PublicKey) -> bool:
    """Mint-to-user DLEQ: R1 = s*G - e*A, R2 = s*B_ - e*C_, e == hash(R1, R2, A, C_)."""
    if not (0 < s < N and 0 < e < N):
        return False
    try:
        r1 = _sub(PrivateKey(_scalar(s)).public_key, _mul(mint_key, e))
        r2 = _sub(_mul(b_, s), _mul(c_, e))
    except ValueError:  # a sum hit the point at infinity: not a valid proof
        return False
    return hmac.compare_digest(hash_e(r1, r2, mint_key, c_), _scalar(e))


def verify_proof_dleq(secret: bytes, c: PublicKey, e: int, s: int, r: int, a: PublicKey) -> bool:
    """User-to-user DLEQ: rebuild B_ and C_ from the revealed blinding factor r."""
    try:
        c_ = PublicKey.combine_keys([c, _mul(a, r)])
        b_ = blind(secret, r)
    except ValueError:
        return False
    return verify_dleq(b_, c_, e, s, a)


def prove_dleq(a: int, b_: PublicKey, c_: PublicKey) -> tuple[int, int]:
    """The mint's DLEQ with the deterministic NUT-12 nonce (for vectors and test doubles)."""
    big_a = PrivateKey(_scalar(a)).public_key
    data = b"Cashu_DLEQ_R_v1" + b"".join(p.format(compressed=False) for p in (big_a, b_, c_))
    for ctr in range(256):
        r = int.from_bytes(hmac.new(_scalar(a), data + bytes([ctr]), "sha256").digest(), "big")
        if 0 < r < N:
            break
    r1 = PrivateKey(_scalar(r)).public_key
    e = int.from_bytes(hash_e(r1, _mul(b_, r), big_a, c_), "big")
    return e, (r + e * a) % N


# --- keysets (NUT-01, NUT-02) ---


def parse_keys(keys: Mapping[str, str]) -> dict[int, PublicKey]:
    """Validate a keyset's amount->pubkey map; ValueError on a bad amount or key."""
    parsed: dict[int, PublicKey] = {}
    for amount, key in keys.items():
        value = int(amount)
        if value <= 0 or value >= 2**64:
            raise ValueError(f"bad amount {amount}")
        parsed[value] = point(key)
    return parsed


def keyset_id_v1(keys: Mapping[int, PublicKey]) -> str:
    joined = b"".join(keys[a].format(compressed=True) for a in sorted(keys))
    return "00" + hashlib.sha256(joined).hexdigest()[:14]


def keyset_id_v2(
    keys: Mapping[int, PublicKey], unit: str, input_fee_ppk: int | None, final_expiry: int | None
) -> str:
    pre = b",".join(f"{a}:{keys[a].format(compressed=True).hex()}".encode() for a in sorted(keys))
    pre += f"|unit:{unit}".encode()
    if input_fee_ppk:
        pre += f"|input_fee_ppk:{input_fee_ppk}".encode()
    if final_expiry:
        pre += f"|final_expiry:{final_expiry}".encode()
    return "01" + hashlib.sha256(pre).hexdigest()


# --- deterministic secrets (NUT-13) ---


def mnemonic_to_seed(mnemonic: str, passphrase: str = "") -> bytes:
    """BIP39 seed; the node keeps a random seed of the same size, tests use the vectors' phrase."""
    norm = unicodedata.normalize("NFKD", mnemonic).encode()
    salt = unicodedata.normalize("NFKD", "mnemonic" + passphrase).encode()
    return hashlib.pbkdf2_hmac("sha512", norm, salt, 2048)


def keyset_id_int(keyset_id: str) -> int:
    return int.from_bytes(bytes.fromhex(keyset_id[:16]), "big") % (2**31 - 1)


class _Bip32:
    """Just enough BIP32 private derivation for the legacy NUT-13 paths."""

    def __init__(self, key: int, chain: bytes) -> None:
        self.key, self.chain = key, chain

    @classmethod
    def master(cls, seed: bytes) -> _Bip32:
        i = hmac.new(b"Bitcoin seed", seed, "sha512").digest()
        return cls(int.from_bytes(i[:32], "big"), i[32:])

    def child(self, index: int, hardened: bool) -> _Bip32:
        if hardened:
            data = b"\x00" + _scalar(self.key) + (index + 2**31).to_bytes(4, "big")
        else:
            pub = PrivateKey(_scalar(self.key)).public_key.format(compressed=True)
            data = pub + index.to_bytes(4, "big")
        i = hmac.new(self.chain, data, "sha512").digest()
        return _Bip32((int.from_bytes(i[:32], "big") + self.key) % N, i[32:])


class Deriver:
    """Secrets and blinding factors for one seed; caches the per-keyset BIP32 node."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._nodes: dict[str, _Bip32] = {}

    def derive(self, keyset_id: str, counter: int) -> tuple[bytes, int]:
        """(secret bytes, r) for this keyset and counter. The proof's secret is secret.hex()."""
        if keyset_id.startswith("01"):
            msg = b"Cashu_KDF_HMAC_SHA256" + bytes.fromhex(keyset_id) + counter.to_bytes(8, "big")
            secret = hmac.new(self._seed, msg + b"\x00", "sha256").digest()
            r = int.from_bytes(hmac.new(self._seed, msg + b"\x01", "sha256").digest(), "big") % N
            return secret, r
        if keyset_id.startswith("00"):
            node = self._nodes.get(keyset_id)
            if node is None:
                node = _Bip32.master(self._seed).child(129372, True).child(0, True)
                node = node.child(keyset_id_int(keyset_id), True)
                self._nodes[keyset_id] = node
            leaf = node.child(counter, True)
            return _scalar(leaf.child(0, False).key), leaf.child(1, False).key
        raise ValueError(f"unsupported keyset version: {keyset_id[:2]}")
