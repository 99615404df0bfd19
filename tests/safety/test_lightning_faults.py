"""Lightning payments against a mint that misbehaves, and many at once: a melt whose answer
never comes is settled from the mint's record of it (once), concurrent payments under one
Idempotency-Key pay once, concurrent payments never take a balance below zero; with
`accept_foreign` off, a token of an untrusted mint makes no connection to it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from tests.conftest import NodeHandle
from tests.safety.faulty_mint import FaultyMint
from tests.support.mints import MintInfo, RefWallet
from tests.support.money import call
from tests.test_lightning import key_by_invoice, payee_invoice

WITHDRAW = "/v1/wallet/withdraw"


async def test_a_melt_whose_answer_never_comes_is_settled_once_from_the_quote_state(
    make_node: Callable[..., NodeHandle], faulty: FaultyMint, fee_mint: MintInfo
) -> None:
    node = make_node(
        cashu={"mints": [faulty.url], "mint_timeout_s": 3},
        lightning={"watch_interval_s": 0.2, "melt_timeout_s": 2},
    )
    payee = make_node(cashu={"mints": [fee_mint.url]})
    key = await key_by_invoice(node, 300)
    bolt11 = await payee_invoice(payee, 90)
    faulty.swallow = {"/v1/melt/bolt11"}  # the mint pays; its answer is lost
    headers = {"Idempotency-Key": "silent-1"}
    body = {"invoice": bolt11}
    status, _, answer = await call(node, "POST", WITHDRAW, key, headers=headers, json=body)
    assert status == 503 and answer["error"]["code"] == "mint_unavailable", answer
    in_doubt = node.balance(key)
    assert in_doubt < (300 - 90) * 1000  # amount + the whole reserve held meanwhile
    faulty.clear()
    for _ in range(2):
        status, _, paid = await call(node, "POST", WITHDRAW, key, headers=headers, json=body)
        assert status == 200 and paid["status"] == "paid", paid
    assert node.balance(key) == (300 - 90 - paid["fee_sat"]) * 1000 > in_doubt
    node.assert_clean()


async def test_concurrent_payments_pay_once_per_key_and_never_overdraw(
    make_node: Callable[..., NodeHandle], mint: MintInfo, fee_mint: MintInfo
) -> None:
    node = make_node(cashu={"mints": [mint.url]}, lightning={"watch_interval_s": 0.2})
    payee = make_node(cashu={"mints": [fee_mint.url]})
    key = await key_by_invoice(node, 400)
    bolt11 = await payee_invoice(payee, 100)
    same = {"Idempotency-Key": "same-1"}
    answers = await asyncio.gather(
        *(
            call(node, "POST", WITHDRAW, key, headers=same, json={"invoice": bolt11})
            for _ in range(6)
        )
    )
    paid = [a[2] for a in answers if a[0] == 200]
    assert paid and all(p == paid[0] for p in paid), answers
    assert all(a[0] in (200, 409) for a in answers), answers  # 409: still being settled
    after_one = (400 - 100 - paid[0]["fee_sat"]) * 1000
    assert node.balance(key) == after_one
    # six different payments of 100 sat from what is left (~298 sat): at most two fit
    invoices = [await payee_invoice(payee, 100) for _ in range(6)]
    answers = await asyncio.gather(
        *(call(node, "POST", WITHDRAW, key, json={"invoice": b}) for b in invoices)
    )
    ok = [a[2] for a in answers if a[0] == 200]
    assert 1 <= len(ok) <= 2 and all(a[0] in (200, 402, 409) for a in answers), answers
    assert node.balance(key) == after_one - sum((100 + p["fee_sat"]) * 1000 for p in ok) >= 0
    node.assert_clean()


async def test_a_token_of_an_untrusted_mint_makes_no_connection_to_it(
    make_node: Callable[..., NodeHandle], mint: MintInfo, ref_wallet: RefWallet
) -> None:
    """`[cashu] accept_foreign` is not built: the rule stands, refused before any contact."""
    from tests.safety.conftest import moved_token

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    elsewhere = f"http://127.0.0.1:{listener.getsockname()[1]}"
    node = make_node(cashu={"mints": [mint.url]})
    token = await moved_token(ref_wallet, mint, elsewhere, 50)
    for path, body in (("/v1/wallet/create", {"cashu_token": token}),):
        status, _, answer = await call(node, "POST", path, json=body)
        assert status == 400 and answer["error"]["code"] == "mint_not_trusted", answer
    status, _, answer = await call(node, "GET", "/v1/wallet/balance", token)
    assert status == 400 and answer["error"]["code"] == "mint_not_trusted", answer
    try:
        listener.accept()
        raise AssertionError("the node connected to the untrusted mint")
    except BlockingIOError:
        pass  # nobody knocked
    finally:
        listener.close()
