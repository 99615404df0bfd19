"""The NUT test vectors (00, 01, 02, 12, 13, 18, 26), copied from the specs' tests/ folder into
data/nut_vectors.json (the large ones) or written inline below (the short ones)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import cbor2
import pytest
from coincurve import PrivateKey

from wallet import bech32, crypto
from wallet.errors import TokenInvalid
from wallet.requests import PaymentRequest, encode_creq_a, encode_creq_b, parse_request
from wallet.tokens import parse_token, serialize_v3, serialize_v4

V = json.loads((Path(__file__).parent / "data" / "nut_vectors.json").read_text())
MNEMONIC = "half depart obvious quality work element tank gorilla view sugar picture humble"


# --- NUT-00 ---


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("00" * 32, "024cce997d3b518f739663b757deaec95bcd9473c30a14ac2fd04023a739d1a725"),
        ("00" * 31 + "01", "022e7158e11c9506f1aa4248bf531298daa7febd6194f003edcd9b93ade6253acf"),
        ("00" * 31 + "02", "026cdbe15362df59cd1dd3c9c11de8aedac2106eca69236ecd9fbe117af897be4f"),
    ],
)
def test_hash_to_curve(message: str, expected: str) -> None:
    assert crypto.hash_to_curve(bytes.fromhex(message)).format().hex() == expected


@pytest.mark.parametrize(
    ("x", "r", "b_"),
    [
        (
            "d341ee4871f1f889041e63cf0d3823c713eea6aff01e80f1719f08f9e5be98f6",
            "99fce58439fc37412ab3468b73db0569322588f62fb3a49182d67e23d877824a",
            "033b1a9737a40cc3fd9b6af4b723632b76a67a36782596304612a6c2bfb5197e6d",
        ),
        (
            "f1aaf16c2239746f369572c0784d9dd3d032d952c2d992175873fb58fae31a60",
            "f78476ea7cc9ade20f9e05e58a804cf19533f03ea805ece5fee88c8e2874ba50",
            "029bdf2d716ee366eddf599ba252786c1033f47e230248a4612a5670ab931f1763",
        ),
    ],
)
def test_blinded_messages(x: str, r: str, b_: str) -> None:
    assert crypto.blind(bytes.fromhex(x), int(r, 16)).format().hex() == b_


@pytest.mark.parametrize(
    ("k", "c_"),
    [
        ("00" * 31 + "01", "02a9acc1e48c25eeeb9289b5031cc57da9fe72f3fe2861d264bdc074209b107ba2"),
        ("7f" * 32, "0398bc70ce8184d27ba89834d19f5199c84443c31131e48d3c1214db24247d005d"),
    ],
)
def test_blinded_signatures(k: str, c_: str) -> None:
    b_ = crypto.point("02a9acc1e48c25eeeb9289b5031cc57da9fe72f3fe2861d264bdc074209b107ba2")
    assert crypto.sign_blinded(int(k, 16), b_).format().hex() == c_


def test_unblinding_recovers_the_mints_signature_on_y() -> None:
    k, r, secret = 0x1234, 0xABCDEF, b"some secret"
    big_k = PrivateKey(k.to_bytes(32, "big")).public_key
    c_ = crypto.sign_blinded(k, crypto.blind(secret, r))
    assert crypto.unblind(c_, r, big_k) == crypto.sign_blinded(k, crypto.hash_to_curve(secret))


def test_v3_token_serializes_as_the_vector() -> None:
    t = V["nut00_tokens"]
    token = parse_token(t["v3_serialized"])
    assert token.mint == "https://8333.space:3338"
    assert [p.amount for p in token.proofs] == [2, 8]
    assert token.memo == "Thank you." and token.unit == "sat"
    expected = t["v3_serialized"].rstrip("=")
    assert serialize_v3(token) == expected
    assert json.loads(base64.urlsafe_b64decode(t["v3_serialized"][6:] + "==")) == t["v3_json"]


@pytest.mark.parametrize("bad", V["nut00_tokens"]["v3_invalid"])
def test_v3_token_with_a_wrong_prefix_is_refused(bad: str) -> None:
    with pytest.raises(TokenInvalid):
        parse_token(bad)


def test_v3_token_with_and_without_padding_both_parse() -> None:
    a, b = (parse_token(t) for t in V["nut00_tokens"]["v3_padding"])
    assert a == b and a.memo == "Thank you very much."


def test_v4_single_keyset_vector() -> None:
    text = V["nut00_tokens"]["v4_single"]
    token = parse_token(text)
    assert token.mint == "http://localhost:3338" and token.memo == "Thank you"
    assert token.keyset_ids == ["00ad268c4d1f5826"]
    assert token.proofs[0].c == "038618543ffb6b8695df4ad4babcde92a34a96bdcd97dcee0d7ccf98d472126792"
    assert serialize_v4(token) == text.rstrip("=")


def test_v4_multi_keyset_vector() -> None:
    text = V["nut00_tokens"]["v4_multi"]
    token = parse_token(text)
    assert token.keyset_ids == ["00ffd48b8f5ecf80", "00ad268c4d1f5826"]
    assert [p.amount for p in token.proofs] == [1, 2, 1]
    assert serialize_v4(token) == text


def test_v4_raw_bytes_vector_is_the_same_cbor() -> None:
    raw = bytes.fromhex(V["nut00_tokens"]["v4_raw"])
    assert raw.startswith(b"crawB")
    token = parse_token(V["nut00_tokens"]["v4_single"])
    body = base64.urlsafe_b64decode(serialize_v4(token)[6:] + "==")
    assert cbor2.loads(raw[5:]) == cbor2.loads(body)


# --- NUT-01 ---


@pytest.mark.parametrize("keys", V["nut01_invalid"])
def test_invalid_keysets_are_refused(keys: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        crypto.parse_keys(keys)


@pytest.mark.parametrize("keys", V["nut01_valid"])
def test_valid_keysets_are_accepted_including_2_pow_63(keys: dict[str, str]) -> None:
    parsed = crypto.parse_keys(keys)
    assert len(parsed) == len(keys) and max(parsed) in (8, 2**63)


# --- NUT-02 ---


@pytest.mark.parametrize("vec", V["nut02_v1"], ids=lambda v: v["id"])
def test_keyset_id_v1(vec: dict[str, Any]) -> None:
    assert crypto.keyset_id_v1(crypto.parse_keys(vec["keys"])) == vec["id"]


@pytest.mark.parametrize("vec", V["nut02_v2"], ids=lambda v: v["id"][:12])
def test_keyset_id_v2(vec: dict[str, Any]) -> None:
    keys = crypto.parse_keys(vec["keys"])
    kid = crypto.keyset_id_v2(keys, vec["unit"], vec["input_fee_ppk"], vec["final_expiry"])
    assert kid == vec["id"]


def test_fee_is_rounded_up_per_transaction() -> None:
    from wallet.outputs import input_fee

    assert input_fee([100] * 3) == 1  # NUT-02's example: ceil(0.3)
    assert input_fee([100] * 10) == 1 and input_fee([100] * 11) == 2 and input_fee([]) == 0


# --- NUT-12 ---

A_PUB = crypto.point("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
P1 = "020000000000000000000000000000000000000000000000000000000000000001"


def test_hash_e() -> None:
    r1 = crypto.point(P1)
    c_ = crypto.point("02a9acc1e48c25eeeb9289b5031cc57da9fe72f3fe2861d264bdc074209b107ba2")
    expected = "a4dc034b74338c28c6bc3ea49731f2a24440fc7c4affc08b31a93fc9fbe6401e"
    assert crypto.hash_e(r1, r1, r1, c_).hex() == expected


def test_deterministic_nonce_dleq() -> None:
    b_ = crypto.point("02a9acc1e48c25eeeb9289b5031cc57da9fe72f3fe2861d264bdc074209b107ba2")
    c_ = crypto.point("0244eccfc7a348274458bb38044c7f3c389b3c2086c7ec18b5812d2877ab937787")
    e, s = crypto.prove_dleq(2, b_, c_)
    assert f"{e:064x}" == "2a16ffee280aff3c429045607f9b8e0bf8b35910c44c1b20b9dfaf01b263d7b3"
    assert f"{s:064x}" == "9df27731238334718d120d4f74611a7c668233f988e687ac3fb188f0a34a2dab"
    big_a = crypto.point("02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5")
    assert crypto.verify_dleq(b_, c_, e, s, big_a)


def test_dleq_on_blind_signature() -> None:
    b_ = crypto.point("02a9acc1e48c25eeeb9289b5031cc57da9fe72f3fe2861d264bdc074209b107ba2")
    e = int("9818e061ee51d5c8edc3342369a554998ff7b4381c8652d724cdf46429be73d9", 16)
    s = int("9818e061ee51d5c8edc3342369a554998ff7b4381c8652d724cdf46429be73da", 16)
    assert crypto.verify_dleq(b_, b_, e, s, A_PUB)
    assert not crypto.verify_dleq(b_, b_, e, s + 1, A_PUB)


def test_dleq_on_proof() -> None:
    secret = b"daf4dd00a2b68a0858a80450f52c8a7d2ccf87d375e43e216e0c571f089f63e9"
    c = crypto.point("024369d2d22a80ecf78f3937da9d5f30c1b9f74f0c32684d583cca0fa6a61cdcfc")
    e = int("b31e58ac6527f34975ffab13e70a48b6d2b0d35abc4b03f0151f09ee1a9763d4", 16)
    s = int("8fbae004c59e754d71df67e392b6ae4e29293113ddc2ec86592a0431d16306d8", 16)
    r = int("a6d13fcd7a18442e6076f5e1e7c887ad5de40a019824bdfa9fe740d302e8d861", 16)
    assert crypto.verify_proof_dleq(secret, c, e, s, r, A_PUB)
    assert not crypto.verify_proof_dleq(secret, c, e, s, r + 1, A_PUB)


# --- NUT-13 ---

V1_SECRETS = [
    "485875df74771877439ac06339e284c3acfcd9be7abf3bc20b516faeadfe77ae",
    "8f2b39e8e594a4056eb1e6dbb4b0c38ef13b1b2c751f64f810ec04ee35b77270",
    "bc628c79accd2364fd31511216a0fab62afd4a18ff77a20deded7b858c9860c8",
    "59284fd1650ea9fa17db2b3acf59ecd0f2d52ec3261dd4152785813ff27a33bf",
    "576c23393a8b31cc8da6688d9c9a96394ec74b40fdaf1f693a6bb84284334ea0",
]
V1_RS = [
    "ad00d431add9c673e843d4c2bf9a778a5f402b985b8da2d5550bf39cda41d679",
    "967d5232515e10b81ff226ecf5a9e2e2aff92d66ebc3edf0987eb56357fd6248",
    "b20f47bb6ae083659f3aa986bfa0435c55c6d93f687d51a01f26862d9b9a4899",
    "fb5fca398eb0b1deb955a2988b5ac77d32956155f1c002a373535211a2dfdc29",
    "5f09bfbfe27c439a597719321e061e2e40aad4a36768bb2bcc3de547c9644bf9",
]
V2_SECRETS = [
    "db5561a07a6e6490f8dadeef5be4e92f7cebaecf2f245356b5b2a4ec40687298",
    "b70e7b10683da3bf1cdf0411206f8180c463faa16014663f39f2529b2fda922e",
    "78a7ac32ccecc6b83311c6081b89d84bb4128f5a0d0c5e1af081f301c7a513f5",
    "094a2b6c63bfa7970bc09cda0e1cfc9cd3d7c619b8e98fabcfc60aea9e4963e5",
    "5e89fc5d30d0bf307ddf0a3ac34aa7a8ee3702169dafa3d3fe1d0cae70ecd5ef",
]
V2_RS = [
    "6d26181a3695e32e9f88b80f039ba1ae2ab5a200ad4ce9dbc72c6d3769f2b035",
    "bde4354cee75545bea1a2eee035a34f2d524cee2bb01613823636e998386952e",
    "f40cc1218f085b395c8e1e5aaa25dccc851be3c6c7526a0f4e57108f12d6dac4",
    "099ed70fc2f7ac769bc20b2a75cb662e80779827b7cc358981318643030577d0",
    "5550337312d223ba62e3f75cfe2ab70477b046d98e3e71804eade3956c7b98cf",
]
V2_ID = "015ba18a8adcd02e715a58358eb618da4a4b3791151a4bee5e968bb88406ccf76a"


def test_keyset_id_integer() -> None:
    assert crypto.keyset_id_int("009a1f293253e41e") == 864559728


@pytest.mark.parametrize(
    ("keyset_id", "secrets", "rs"),
    [("009a1f293253e41e", V1_SECRETS, V1_RS), (V2_ID, V2_SECRETS, V2_RS)],
    ids=["v1-bip32", "v2-hmac"],
)
def test_deterministic_secrets(keyset_id: str, secrets: list[str], rs: list[str]) -> None:
    deriver = crypto.Deriver(crypto.mnemonic_to_seed(MNEMONIC))
    for counter, (secret, r) in enumerate(zip(secrets, rs, strict=True)):
        got_secret, got_r = deriver.derive(keyset_id, counter)
        assert (got_secret.hex(), f"{got_r:064x}") == (secret, r)


# --- NUT-18 / NUT-26 ---


def _from_json(obj: dict[str, Any]) -> PaymentRequest:
    from wallet.requests import Nut10, Transport

    n10 = obj.get("nut10")
    return PaymentRequest(
        id=obj.get("i"),
        amount=obj.get("a"),
        unit=obj.get("u"),
        single_use=obj.get("s"),
        mints=obj.get("m"),
        description=obj.get("d"),
        transports=[Transport(t["t"], t["a"], t.get("g")) for t in obj.get("t", [])],
        nut10=None if n10 is None else Nut10(n10["k"], n10["d"], n10.get("t")),
    )


def _nostr_same(a: PaymentRequest, b: PaymentRequest) -> bool:
    """Equal, comparing nostr targets by the pubkey and relays they name (npub vs nprofile)."""

    def norm(req: PaymentRequest) -> PaymentRequest:
        from dataclasses import replace

        ts = []
        for t in req.transports:
            if t.type == "nostr":
                pubkey, relays = bech32.decode_nostr(t.target)
                t = replace(t, target=bech32.encode_nostr(pubkey, relays))
            ts.append(t)
        return replace(req, transports=ts)

    return norm(a) == norm(b)


@pytest.mark.parametrize("vec", V["nut18"][1:], ids=lambda v: v["json"]["i"])
def test_creq_a_vectors_decode(vec: dict[str, Any]) -> None:
    assert parse_request(vec["encoded"]) == _from_json(vec["json"])


def test_creq_a_basic_vector_is_the_specs_example() -> None:
    # The test file's "basic" JSON does not match its own encoding; NUT-18's example does.
    example = V["nut18_spec_example"]
    assert example["encoded"] == V["nut18"][0]["encoded"]
    assert parse_request(example["encoded"]) == _from_json(example["json"])


@pytest.mark.parametrize("vec", V["nut18"], ids=lambda v: v["json"]["i"])
def test_creq_a_round_trips(vec: dict[str, Any]) -> None:
    req = parse_request(vec["encoded"])
    assert parse_request(encode_creq_a(req)) == req


def test_creq_a_encodes_byte_for_byte_where_the_vector_has_no_undefined_fields() -> None:
    for vec in V["nut18"]:
        raw = cbor2.loads(base64.urlsafe_b64decode(vec["encoded"][5:] + "=="))
        if any(t.get("g", 0) is cbor2.undefined for t in raw.get("t", [])):
            continue
        assert encode_creq_a(parse_request(vec["encoded"])) == vec["encoded"].rstrip("=")


@pytest.mark.parametrize("vec", V["nut26"], ids=lambda v: v["json"]["i"])
def test_creq_b_vectors(vec: dict[str, Any]) -> None:
    decoded = parse_request(vec["encoded"])
    assert _nostr_same(decoded, _from_json(vec["json"]))
    assert encode_creq_b(_from_json(vec["json"])) == vec["encoded"]
    assert parse_request(vec["encoded"].lower()) == decoded  # decoders accept lowercase


def test_creq_b_spec_example() -> None:
    ex = V["nut26_spec_example"]
    assert encode_creq_b(_from_json(ex["json"])) == ex["encoded"]


@pytest.mark.parametrize(
    "bad",
    ["", "creqA", "creqA!!!", "creqAAAAA", "CREQB1QQQQ", "creqb1" + "q" * 20, "hello", "creqAAQ"],
)
def test_malformed_requests_raise_token_invalid(bad: str) -> None:
    with pytest.raises(TokenInvalid):
        parse_request(bad)
