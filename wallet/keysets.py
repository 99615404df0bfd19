"""Each trusted mint's keysets, cached in memory and in `wallet_keysets`.

A receive in the steady state makes one network call, the swap: keysets and keys come from the
cache. The listing is refreshed when a token names a keyset we do not know, when the cached
listing is older than `ttl_s`, or after the mint refused a swap for a keyset reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import orjson
from coincurve import PublicKey

from wallet import crypto
from wallet.errors import MintError, TokenInvalid, UnsupportedUnit
from wallet.mint_client import MintClient
from wallet.store import Database


@dataclass
class Keyset:
    id: str
    mint: str
    unit: str
    active: bool
    input_fee_ppk: int
    keys: dict[int, PublicKey] | None = field(default=None, repr=False)

    @property
    def amounts(self) -> list[int]:
        return sorted(self.keys or {})


class KeysetCache:
    def __init__(self, db: Database, ttl_s: float = 300.0) -> None:
        self._db = db
        self._ttl = ttl_s
        self._by_mint: dict[str, dict[str, Keyset]] = {}
        self._fetched: dict[str, float] = {}
        for row in db.query("SELECT * FROM wallet_keysets"):
            ks = Keyset(
                row["id"], row["mint"], row["unit"], bool(row["active"]), row["input_fee_ppk"]
            )
            if row["keys"]:
                ks.keys = crypto.parse_keys(orjson.loads(row["keys"]))
            self._by_mint.setdefault(row["mint"], {})[ks.id] = ks

    def get(self, keyset_id: str) -> Keyset:
        for keysets in self._by_mint.values():
            if keyset_id in keysets:
                return keysets[keyset_id]
        raise LookupError(keyset_id)

    def mark_stale(self, mint: str) -> None:
        self._fetched.pop(mint, None)

    def _fresh(self, mint: str) -> bool:
        return time.monotonic() - self._fetched.get(mint, -1e18) < self._ttl

    def _match(self, mint: str, wanted: str) -> Keyset | None:
        found = [k for k in self._by_mint.get(mint, {}).values() if k.id.startswith(wanted)]
        if len(found) > 1:
            raise TokenInvalid(f"ambiguous short keyset id {wanted}")
        return found[0] if found else None

    async def resolve(self, client: MintClient, ids: list[str]) -> dict[str, Keyset]:
        """Map the token's (possibly short) keyset ids to this mint's keysets."""
        if not self._fresh(client.url) or any(self._match(client.url, i) is None for i in ids):
            await self.refresh(client)
        out: dict[str, Keyset] = {}
        for wanted in ids:
            ks = self._match(client.url, wanted)
            if ks is None:
                raise TokenInvalid(f"keyset {wanted} is not a keyset of {client.url}")
            if ks.unit != "sat":
                raise UnsupportedUnit(ks.unit)
            out[wanted] = ks
        return out

    async def active(self, client: MintClient) -> Keyset:
        """The keyset new outputs are made in (active, unit sat), with its keys loaded."""
        if not self._fresh(client.url):
            await self.refresh(client)
        candidates = [
            k for k in self._by_mint.get(client.url, {}).values() if k.active and k.unit == "sat"
        ]
        if not candidates:
            raise MintError(None, f"{client.url} has no active sat keyset")
        # lowest fee first; ties broken by id so every run picks the same one
        ks = min(candidates, key=lambda k: (k.input_fee_ppk, k.id))
        await self.load_keys(client, ks)
        return ks

    async def load_keys(self, client: MintClient, ks: Keyset) -> dict[int, PublicKey]:
        if ks.keys is None:
            keys = await client.keys(ks.id)
            with self._db.transaction() as conn:
                conn.execute(
                    "UPDATE wallet_keysets SET keys = ? WHERE id = ?",
                    (orjson.dumps({str(a): k for a, k in keys.items()}).decode(), ks.id),
                )
            ks.keys = crypto.parse_keys({str(a): k for a, k in keys.items()})
        return ks.keys

    async def refresh(self, client: MintClient) -> None:
        listing = await client.keysets()
        known = self._by_mint.setdefault(client.url, {})
        with self._db.transaction() as conn:
            for info in listing:
                owner = conn.execute(
                    "SELECT mint FROM wallet_keysets WHERE id = ?", (info.id,)
                ).fetchone()
                if owner is not None and owner[0] != client.url:
                    continue  # NUT-02: never accept a keyset id another mint already uses
                conn.execute(
                    "INSERT INTO wallet_keysets (id, mint, unit, active, input_fee_ppk)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                    " active = excluded.active, input_fee_ppk = excluded.input_fee_ppk",
                    (info.id, client.url, info.unit, int(info.active), info.input_fee_ppk),
                )
                ks = known.get(info.id)
                if ks is None:
                    known[info.id] = Keyset(
                        info.id, client.url, info.unit, info.active, info.input_fee_ppk
                    )
                else:
                    ks.active, ks.input_fee_ppk = info.active, info.input_fee_ppk
        self._fetched[client.url] = time.monotonic()
