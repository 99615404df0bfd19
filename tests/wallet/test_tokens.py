"""Token parsing refuses malformed input with TokenInvalid and nothing else; the seed file."""

from __future__ import annotations

import base64
import contextlib
import os
import stat
from pathlib import Path

import cbor2
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wallet import TokenInvalid, load_or_create_seed, parse_request, parse_token
from wallet.tokens import Proof, Token, serialize_v3, serialize_v4

C = "02" + "11" * 32


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "cashu",
        "cashuA",
        "cashuB",
        "cashuA!!!!",
        "cashuA" + b64(b"not json"),
        "cashuA" + b64(b"[]"),
        "cashuA" + b64(orjson.dumps({"token": []})),
        "cashuA" + b64(orjson.dumps({"token": [{"mint": "m", "proofs": []}]})),
        "cashuA" + b64(orjson.dumps({"token": [{"mint": "m", "proofs": [{"amount": -1}]}]})),
        "cashuA"
        + b64(
            orjson.dumps(
                {
                    "token": [
                        {"mint": "m", "proofs": [{"amount": 1, "id": "zz", "secret": "s", "C": C}]}
                    ]
                }
            )
        ),
        "cashuA"
        + b64(
            orjson.dumps(
                {
                    "token": [
                        {
                            "mint": "m",
                            "proofs": [{"amount": True, "id": "00" * 8, "secret": "s", "C": C}],
                        }
                    ]
                }
            )
        ),
        "cashuB" + b64(cbor2.dumps({"t": "x"})),
        "cashuB" + b64(cbor2.dumps({"t": [{"i": "00", "p": []}], "m": "m", "u": "sat"})),
        "cashuB"
        + b64(cbor2.dumps({"m": "m", "u": "sat", "t": [{"i": b"\0" * 8, "p": [{"a": 2**64}]}]})),
        "cashuB" + b64(b"\x9f" * 5000),  # deep nesting
        "cashuB" + b64(b"\xbf\x61"),  # truncated
    ],
)
def test_malformed_tokens_raise_token_invalid(bad: str) -> None:
    with pytest.raises(TokenInvalid):
        parse_token(bad)


def test_multi_mint_v3_tokens_are_refused() -> None:
    proof = {"amount": 1, "id": "00" * 8, "secret": "s", "C": C}
    obj = {"token": [{"mint": "a", "proofs": [proof]}, {"mint": "b", "proofs": [proof]}]}
    with pytest.raises(TokenInvalid):
        parse_token("cashuA" + b64(orjson.dumps(obj)))


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_any_text_parses_or_raises_token_invalid(text: str) -> None:
    for candidate in (text, "cashuA" + text, "cashuB" + text, "creqA" + text, "creqb1" + text):
        with contextlib.suppress(TokenInvalid):
            parse_token(candidate)
        with contextlib.suppress(TokenInvalid):
            parse_request(candidate)


@given(st.binary(max_size=400))
@settings(max_examples=300, deadline=None)
def test_any_bytes_parse_or_raise_token_invalid(data: bytes) -> None:
    for prefix in ("cashuA", "cashuB", "creqA"):
        with contextlib.suppress(TokenInvalid):
            (parse_request if prefix == "creqA" else parse_token)(prefix + b64(data))


cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["t", "i", "p", "a", "s", "c", "m", "u", "d"]), children, max_size=5
        )
    ),
    max_leaves=20,
)


@given(cbor_values)
@settings(max_examples=300, deadline=None)
def test_any_cbor_structure_parses_or_raises_token_invalid(value: object) -> None:
    with contextlib.suppress(TokenInvalid):
        parse_token("cashuB" + b64(cbor2.dumps(value)))


@given(
    st.lists(st.integers(min_value=1, max_value=2**40), min_size=1, max_size=8),
    st.text(min_size=1, max_size=40),
    st.booleans(),
)
def test_serialize_then_parse_round_trips(amounts: list[int], memo: str, v3: bool) -> None:
    proofs = [Proof(a, "01" + "ab" * 32, f"secret-{i}", C) for i, a in enumerate(amounts)]
    token = Token("https://mint.example", proofs, "sat", memo)
    text = serialize_v3(token) if v3 else serialize_v4(token)
    back = parse_token(text)
    assert (back.mint, back.memo, back.unit, back.proofs) == (
        token.mint,
        memo,
        "sat",
        proofs if v3 else [Proof(p.amount, "01" + "ab" * 7, p.secret, p.c) for p in proofs],
    )


def test_seed_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "wallet.seed"
    seed = load_or_create_seed(path)
    assert len(seed) == 64
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_seed(path) == seed
