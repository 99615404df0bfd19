"""What receive, send and recovery share: the trust list, one client and one lock per mint,
the keyset cache, the seed's deriver, the node's hooks and the proof table."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from wallet import crypto
from wallet.errors import MintError, UntrustedMint
from wallet.keysets import Keyset, KeysetCache
from wallet.mint_client import MintClient, normalize_url
from wallet.outputs import NewProof
from wallet.store import Connection, Database
from wallet.tokens import dleq_text

# (conn, purpose, amount_msat, mint_url): runs inside the wallet's commit transaction.
CreditHook = Callable[[Connection, str, int, str], None]
# (conn, purpose, amount_msat, fee_msat): take the payout's amount and its fee from whoever
# asked for it; raise to refuse (e.g. insufficient balance). Runs once the inputs are chosen.
DebitHook = Callable[[Connection, str, int, int], None]
# (conn, purpose, debited_msat): undo a debit (amount + fee) whose payout failed.
RefundHook = Callable[[Connection, str, int], None]
# Called by name where a crash is the hardest to recover from, between a mint's answer and
# the commit that stores it ("receive-after-swap", "send-after-swap"). It does nothing in the
# node; the recovery tests pass one that kills the process there (tests/support/crash_serve.py).
Checkpoint = Callable[[str], None]


class WalletEvents(Protocol):
    """What the wallet reports after the fact (for metrics): called once a movement committed."""

    def redeemed(self, mint: str, amount_msat: int) -> None: ...
    def paid_out(self, mint: str, amount_msat: int) -> None: ...
    def mint_failed(self, mint: str, kind: str) -> None: ...


class NoEvents:
    def redeemed(self, mint: str, amount_msat: int) -> None:
        pass

    def paid_out(self, mint: str, amount_msat: int) -> None:
        pass

    def mint_failed(self, mint: str, kind: str) -> None:
        pass


@dataclass(frozen=True)
class Receipt:
    amount_msat: int  # credited: sum(inputs) - fee, in msat
    fee_msat: int  # the mint's input fee (NUT-02)
    mint: str
    unit: str


def no_checkpoint(name: str) -> None:
    """The node's checkpoint: nothing happens there."""


class WalletCore:
    def __init__(
        self,
        db: Database,
        seed: bytes,
        trusted_mints: list[str],
        session: aiohttp.ClientSession,
        credit: CreditHook,
        debit: DebitHook,
        refund: RefundHook,
        *,
        timeout_s: float = 10.0,
        melt_timeout_s: float = 60.0,
        events: WalletEvents | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        if len(seed) < 16:
            raise ValueError("seed too short")
        self._db = db
        self._session = session  # for mints outside the trust list (wallet.foreign)
        self._timeout_s = timeout_s
        self._melt_timeout_s = melt_timeout_s  # a Lightning payment takes longer
        self._deriver = crypto.Deriver(seed)
        # a key of its own (not the seed) for values the node must be able to compute again
        self._claim_key = hmac.new(seed, b"nutgate claim key", hashlib.sha256).digest()
        self._trusted = [normalize_url(m) for m in trusted_mints]
        self._events: WalletEvents = events or NoEvents()
        self._clients = {
            m: MintClient(session, m, timeout_s, self._events.mint_failed) for m in self._trusted
        }
        self._locks = {m: asyncio.Lock() for m in self._trusted}
        self._keysets = KeysetCache(db)
        self._credit, self._debit, self._refund = credit, debit, refund
        self._checkpoint = checkpoint or no_checkpoint

    def derived_secret(self, label: str) -> str:
        """A hex secret only this node can compute again from `label` (e.g. the API key of an
        account funded by an invoice, handed out once the invoice is paid)."""
        return hmac.new(self._claim_key, label.encode(), "sha256").hexdigest()

    @property
    def events(self) -> WalletEvents:
        return self._events

    @property
    def checkpoint(self) -> Checkpoint:
        return self._checkpoint

    @property
    def trusted_mints(self) -> list[str]:
        return list(self._trusted)

    def _trusted_url(self, mint: str) -> str:
        url = normalize_url(mint)
        if url not in self._clients:
            raise UntrustedMint(mint)
        return url

    def _client(self, mint: str) -> MintClient:
        client = self._clients.get(mint)
        if client is None:  # a row of a mint removed from the trust list since
            raise UntrustedMint(mint)
        return client

    def _lock(self, mint: str) -> asyncio.Lock:
        return self._locks.setdefault(mint, asyncio.Lock())

    async def _stored_keyset(self, client: MintClient, keyset_id: str) -> Keyset:
        """The keyset of a pending row, keys loaded. Another instance on the database may have
        stored it after this one loaded its cache: list the mint's keysets again first."""
        try:
            ks = self._keysets.get(keyset_id)
        except LookupError:
            await self._keysets.refresh(client)
            try:
                ks = self._keysets.get(keyset_id)
            except LookupError:
                raise MintError(None, f"{client.url} no longer lists keyset {keyset_id}") from None
        await self._keysets.load_keys(client, ks)
        return ks

    def _ours_or_orphan(self, instance: str | None) -> bool:
        """May this process settle a pending row? Its own (serialized by the per-mint lock),
        or one whose node instance is gone; never another live instance's."""
        if instance is None or instance == self._db.instance:
            return True
        return not self._db.instance_alive(instance)

    @staticmethod
    def _purpose_taken(conn: Connection, purpose: str) -> bool:
        """A payout or a melt (not failed) holds this purpose already: one purpose (a client's
        Idempotency-Key) pays out once, as a token or to an invoice, never both."""
        return (
            conn.execute(
                "SELECT 1 FROM wallet_payouts WHERE purpose = ? AND state != 'failed'"
                " UNION ALL SELECT 1 FROM wallet_melts WHERE purpose = ? AND state != 'failed'",
                (purpose, purpose),
            ).fetchone()
            is not None
        )

    @staticmethod
    def _insert_proofs(conn: Connection, mint: str, made: Sequence[NewProof], origin: str) -> None:
        now = int(time.time())
        conn.executemany(
            "INSERT INTO wallet_proofs (y, secret, mint, keyset_id, amount, c, dleq, state,"
            " origin, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'unspent', ?, ?)",
            [
                (
                    n.y,
                    n.proof.secret,
                    mint,
                    n.proof.keyset_id,
                    n.proof.amount,
                    n.proof.c,
                    dleq_text(n.proof.dleq),
                    origin,
                    now,
                )
                for n in made
            ],
        )
