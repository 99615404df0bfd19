"""Keys' rules: sub-keys drawing on a parent's balance, spending limits, expiry, model lists.

The one owner of `key_rules`, one row per `sk-` key that has any rule. A sub-key is an
account of kind `subkey` (balance 0, made in the same transaction as its rules) whose
requests reserve and charge its parent's balance; the ledger tags their reservations and
charges with the sub-key's id, which is how its spending is summed (`Ledger.cap_spent`) and
capped: the limit is checked in the reservation's own write (`Cap`), so concurrent requests
cannot pass it. A limit counts over a period — `day`, `week` or `month` (30 days), windows
from the key's creation — or, with no period, over the key's life; a reset
(`/v1/balance/child-key/reset`) starts the count again. An expired or revoked key spends
nothing more (its own balance, if any, can still be withdrawn); a sub-key cannot withdraw,
top up or make sub-keys.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from node.db.store import Store
from node.errors import Conflict, Forbidden, NodeError, RateLimited, Unauthorized
from node.money.ledger import Cap, Ledger, hash_key

MIGRATIONS = [
    """
    CREATE TABLE key_rules (
        account_id INTEGER PRIMARY KEY,
        parent_id INTEGER,
        name TEXT NOT NULL DEFAULT '',
        spend_limit_msat INTEGER,
        limit_period TEXT,
        reset_at INTEGER NOT NULL DEFAULT 0,
        reset_entry INTEGER NOT NULL DEFAULT 0,
        expires_at INTEGER,
        models TEXT,
        per_minute INTEGER,
        revoked_at INTEGER,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX key_rules_parent ON key_rules(parent_id);
    """
]

SUBKEY = "subkey"  # the accounts kind of a sub-key
MAX_SUBKEYS = 1000  # per parent, revoked ones included
RULELESS_KEPT = 100_000  # keys known to have no rules (Keys.read)
PERIODS = {"day": 86_400, "week": 7 * 86_400, "month": 30 * 86_400}
_COLUMNS = (
    "account_id, parent_id, name, spend_limit_msat, limit_period, reset_at, reset_entry,"
    " expires_at, models, per_minute, revoked_at, created_at"
)


@dataclass(frozen=True)
class Rules:
    """What a key may do; every field optional (None: no such rule)."""

    name: str = ""
    spend_limit_msat: int | None = None
    limit_period: str | None = None
    expires_at: int | None = None
    models: tuple[str, ...] | None = None
    per_minute: int | None = None


@dataclass(frozen=True)
class KeyRules:
    account_id: int
    parent_id: int | None
    rules: Rules
    reset_at: int
    reset_entry: int
    revoked_at: int | None
    created_at: int

    @property
    def public_id(self) -> str:
        return f"key_{self.account_id}"

    def period_start(self, now: int) -> int:
        """Where the current period's count begins (a reset also starts it again)."""
        length = PERIODS.get(self.rules.limit_period or "")
        start = 0
        if length:
            start = self.created_at + (now - self.created_at) // length * length
        return max(start, self.reset_at)

    def period_end(self, now: int) -> int | None:
        length = PERIODS.get(self.rules.limit_period or "")
        return self.period_start(now) + length if length else None

    def counted(self, now: int, limit_msat: int = 0) -> Cap:
        """What this key's period counts (a key that owns its account: its sub-keys too)."""
        start = self.period_start(now)
        own = self.parent_id is None
        return Cap(self.account_id, limit_msat, start, self.reset_entry, whole_account=own)

    def cap(self, now: int) -> Cap | None:
        limit = self.rules.spend_limit_msat
        return None if limit is None else self.counted(now, limit)

    def refusal(self, now: int, model: str | None, names: Sequence[str] = ()) -> NodeError | None:
        """Why this key may not spend now (on `model`, also named `names`: its aliases), or
        None. A model list may name a model by its id or any alias."""
        if self.revoked_at is not None:
            return Unauthorized("this key has been revoked", code="key_revoked")
        expires = self.rules.expires_at
        if expires is not None and now >= expires:
            return Unauthorized(f"this key expired at {expires} (unix time)", code="key_expired")
        allowed = self.rules.models
        if model is not None and allowed is not None and not {model, *names} & set(allowed):
            return Forbidden(
                f"this key may not use the model {model!r} (allowed: {', '.join(allowed)})",
                code="model_not_allowed",
                param="model",
            )
        return None

    def to_json(self, spent_msat: int, now: int) -> dict[str, Any]:
        r = self.rules
        return {
            "id": self.public_id,
            "object": "key",
            "kind": SUBKEY if self.parent_id is not None else "key",
            "name": r.name,
            "spend_limit_msat": r.spend_limit_msat,
            "limit_period": r.limit_period,
            "period_start": self.period_start(now),
            "period_end": self.period_end(now),
            "spent_msat": spent_msat,
            "remaining_msat": None
            if r.spend_limit_msat is None
            else max(0, r.spend_limit_msat - spent_msat),
            "expires_at": r.expires_at,
            "models": list(r.models) if r.models is not None else None,
            "per_minute": r.per_minute,
            "revoked": self.revoked_at is not None,
            "revoked_at": self.revoked_at,
            "created_at": self.created_at,
        }


def _now() -> int:
    return int(time.time())


def _from_row(row: Any) -> KeyRules:
    models = json.loads(row["models"]) if row["models"] is not None else None
    rules = Rules(
        row["name"],
        row["spend_limit_msat"],
        row["limit_period"],
        row["expires_at"],
        tuple(models) if models is not None else None,
        row["per_minute"],
    )
    return KeyRules(
        row["account_id"],
        row["parent_id"],
        rules,
        row["reset_at"],
        row["reset_entry"],
        row["revoked_at"],
        row["created_at"],
    )


def _values(rules: Rules) -> dict[str, Any]:
    return {
        "name": rules.name,
        "lim": rules.spend_limit_msat,
        "period": rules.limit_period,
        "exp": rules.expires_at,
        "models": json.dumps(list(rules.models)) if rules.models is not None else None,
        "pm": rules.per_minute,
    }


class Keys:
    def __init__(self, db: Store, ledger: Ledger) -> None:
        self.db, self.ledger = db, ledger
        self._recent: dict[int, deque[float]] = {}  # key -> its requests' times, last minute
        ledger.recheck = self._recheck
        # a model id -> every name it goes by (id and aliases), set from the catalogue by the
        # builder, so a model list may name a model either way
        self.names_of: Callable[[str], Sequence[str]] = lambda model: (model,)

    def get(self, account_id: int) -> KeyRules | None:
        row = self.db.query_one(
            f"SELECT {_COLUMNS} FROM key_rules WHERE account_id = ?", (account_id,)
        )
        return _from_row(row) if row else None

    async def read(self, account_id: int) -> KeyRules | None:
        """`get` for the hot path (every paid request): awaited, off the event loop where the
        database is across a network (Store.read). A key found to have no rules is answered
        from memory afterwards (`Ledger.ruleless`): its reservation checks that it still has
        none, and else reads them again (`_recheck`)."""
        if account_id in self.ledger.ruleless:
            return None
        rules = await self._read(account_id)
        if rules is None:
            if len(self.ledger.ruleless) >= RULELESS_KEPT:
                self.ledger.ruleless.clear()  # a bound on memory; the busy keys come back
            self.ledger.ruleless.add(account_id)
        return rules

    async def _read(self, account_id: int) -> KeyRules | None:
        rows = await self.db.read(
            f"SELECT {_COLUMNS} FROM key_rules WHERE account_id = ?", (account_id,)
        )
        return _from_row(rows[0]) if rows else None

    async def _recheck(self, account_id: int, model: str | None) -> list[Cap]:
        """For a reservation of a key answered from memory as having no rules, that found it
        may have some: the caps it must reserve within; raises its refusal if it has one."""
        rules = await self._read(account_id)
        return [] if rules is None else self.admit(rules, model)

    def children(self, parent_id: int) -> list[KeyRules]:
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM key_rules WHERE parent_id = ? ORDER BY account_id",
            (parent_id,),
        )
        return [_from_row(r) for r in rows]

    def set_rules(self, account_id: int, rules: Rules) -> None:
        """An account's own key gets (or keeps, on a retried creation) its rules."""
        self.ledger.ruleless.discard(account_id)  # else its next reservation finds them
        with self.db.transaction() as conn:
            conn.execute(
                f"INSERT INTO key_rules ({_COLUMNS}) VALUES (:id, NULL, :name, :lim, :period, 0, 0,"
                " :exp, :models, :pm, NULL, :now) ON CONFLICT (account_id) DO NOTHING",
                {"id": account_id, "now": _now(), **_values(rules)},
            )

    def create_child(self, parent_id: int, rules: Rules, count: int = 1) -> list[tuple[str, int]]:
        """`count` new sub-keys of `parent_id`: [(the key, its account id)]. A sub-key's
        parent is never itself a sub-key; a parent has at most `MAX_SUBKEYS`, counted in the
        write (they cost nothing, so nothing else bounds the rows a key can make)."""
        made: list[tuple[str, int]] = []
        with self.db.transaction() as conn:
            had = conn.execute("SELECT COUNT(*) FROM key_rules WHERE parent_id = ?", (parent_id,))
            if int(had.fetchone()[0]) + count > MAX_SUBKEYS:  # free to make: rows are bounded
                raise Conflict(
                    f"a key has at most {MAX_SUBKEYS} sub-keys (revoked ones count)",
                    code="too_many_subkeys",
                )
            for _ in range(count):
                key = "sk-" + secrets.token_urlsafe(32)
                account_id = self.ledger.create_account(conn, hash_key(key), SUBKEY)
                conn.execute(
                    f"INSERT INTO key_rules ({_COLUMNS}) VALUES (:id, :parent, :name, :lim,"
                    " :period, 0, 0, :exp, :models, :pm, NULL, :now)",
                    {"id": account_id, "parent": parent_id, "now": _now(), **_values(rules)},
                )
                made.append((key, account_id))
        return made

    def update(self, key: KeyRules, **changes: Any) -> KeyRules:
        rules = replace(key.rules, **changes)
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE key_rules SET name = :name, spend_limit_msat = :lim,"
                " limit_period = :period, expires_at = :exp, models = :models, per_minute = :pm"
                " WHERE account_id = :id",
                {"id": key.account_id, **_values(rules)},
            )
        return replace(key, rules=rules)

    def revoke(self, key: KeyRules) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE key_rules SET revoked_at = COALESCE(revoked_at, :now)"
                " WHERE account_id = :id",
                {"id": key.account_id, "now": _now()},
            )

    def reset(self, key: KeyRules) -> None:
        """Start the key's spending count again from now."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE key_rules SET reset_at = :now, reset_entry = :entry WHERE account_id = :id",
                {"id": key.account_id, "now": _now(), "entry": self.ledger.last_entry(conn)},
            )

    def spent(self, key: KeyRules, now: int) -> int:
        return self.ledger.cap_spent(key.counted(now))

    def admit(self, key: KeyRules, model: str | None) -> list[Cap]:
        """Refuse a request the key may not make (revoked, expired, model, per minute), or
        its parent key may not; else the caps its reservation must respect (the key's own,
        and its parent's, which counts its sub-keys' spending too). Both are read as they are
        now, not as the request found them: a key revoked, limited or narrowed since (while its
        request waited on a model it then falls back from) is held to that at once."""
        now = _now()
        key, parent = self._current(key)
        names = () if model is None else self.names_of(model)
        refusal = key.refusal(now, model, names) or (parent and parent.refusal(now, model, names))
        if refusal:
            raise refusal
        limited = [k for k in (key, parent) if k is not None and k.rules.per_minute is not None]
        self._count(limited, key.account_id)
        caps = [key.cap(now), parent.cap(now) if parent is not None else None]
        return [cap for cap in caps if cap is not None]

    def _current(self, key: KeyRules) -> tuple[KeyRules, KeyRules | None]:
        """A key's rules and its parent's as they are now, in one read."""
        parent_id = key.parent_id if key.parent_id is not None else key.account_id
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM key_rules WHERE account_id IN (?, ?)",
            (key.account_id, parent_id),
        )
        found = {rules.account_id: rules for rules in map(_from_row, rows)}
        current = found.get(key.account_id, key)  # rules are never deleted: found
        return current, found.get(parent_id) if key.parent_id is not None else None

    def _count(self, limited: list[KeyRules], asking: int) -> None:
        """One more request in the last minute of each key (a sub-key's and its parent's), or
        none if one of them is at its `per_minute`."""
        now = time.monotonic()
        counts = []
        for key in limited:
            per_minute = key.rules.per_minute or 0
            recent = self._recent.setdefault(key.account_id, deque())
            while recent and recent[0] <= now - 60:
                recent.popleft()
            if len(recent) >= per_minute:
                whose = "this key's" if key.account_id == asking else "its parent key's"
                raise RateLimited(
                    f"{whose} limit of {per_minute} requests per minute is reached",
                    headers={"Retry-After": str(max(1, int(recent[0] + 60 - now) + 1))},
                )
            counts.append(recent)
        for recent in counts:
            recent.append(now)
        if len(self._recent) > 100_000:
            self._recent.clear()  # a bound on memory
