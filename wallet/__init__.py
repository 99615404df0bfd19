"""nutgate's own Cashu wallet, on secp256k1 and the node's HTTP client. Never imports `node`.

from wallet import Wallet, load_or_create_seed
w = Wallet(db, seed, ["https://mint.example"], session, credit, debit, refund)
await w.recover()                              # at start
receipt = await w.receive(token, purpose)      # credit(conn, purpose, msat, mint) inside
token = await w.send(amount_sat, purpose)      # debit(conn, purpose, msat, fee_msat) inside
token = await w.send_up_to(budget_msat, purpose)  # the most that fits, fee included
w.paid(purpose)                                # PaidOut(token, amount_sat, fee_sat, mint)
inv = await w.create_invoice(mint, sats, ref, purpose)  # bolt11 mint quote (NUT-04/23)
inv = await w.settle_invoice(ref)              # paid -> minted, credit(conn, purpose, …) once
melted = await w.pay_invoice(bolt11, purpose, mint)  # melt (NUT-05/08): debit, refund unused
"""

from wallet.bolt11 import Invoice as Bolt11Invoice
from wallet.bolt11 import decode as decode_bolt11
from wallet.core import Checkpoint, CreditHook, DebitHook, Receipt, RefundHook, WalletEvents
from wallet.errors import (
    AlreadyCredited,
    BudgetTooSmall,
    InsufficientFunds,
    MintAnswerGarbled,
    MintError,
    MintUnavailable,
    PayoutPending,
    TokenInvalid,
    TokenSpent,
    UnsupportedUnit,
    UntrustedMint,
    WalletError,
)
from wallet.foreign import ForeignFees
from wallet.invoices import Invoice
from wallet.melts import Melted
from wallet.payout import PaidOut
from wallet.requests import PaymentRequest, Transport, encode_creq_a, encode_creq_b, parse_request
from wallet.seed import SeedMismatch, load_or_create_seed, shared_seed
from wallet.store import MIGRATIONS, Database, shared_secret, unspent_msat
from wallet.tokens import Proof, Token, parse_token, serialize_v3, serialize_v4
from wallet.wallet import ProofState, Wallet

__all__ = [
    "MIGRATIONS",
    "AlreadyCredited",
    "Bolt11Invoice",
    "BudgetTooSmall",
    "Checkpoint",
    "CreditHook",
    "Database",
    "DebitHook",
    "ForeignFees",
    "InsufficientFunds",
    "Invoice",
    "Melted",
    "MintAnswerGarbled",
    "MintError",
    "MintUnavailable",
    "PaidOut",
    "PaymentRequest",
    "PayoutPending",
    "Proof",
    "ProofState",
    "Receipt",
    "RefundHook",
    "SeedMismatch",
    "Token",
    "TokenInvalid",
    "TokenSpent",
    "Transport",
    "UnsupportedUnit",
    "UntrustedMint",
    "Wallet",
    "WalletError",
    "WalletEvents",
    "decode_bolt11",
    "encode_creq_a",
    "encode_creq_b",
    "load_or_create_seed",
    "parse_request",
    "parse_token",
    "serialize_v3",
    "serialize_v4",
    "shared_secret",
    "shared_seed",
    "unspent_msat",
]
