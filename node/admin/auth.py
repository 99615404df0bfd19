"""The operator's password, sessions and CSRF tokens, and the login throttle.

- The password is kept only as an scrypt hash. With no `[node].admin_password` one is generated
  at first start and printed once; a password set in the file is seeded into the database, and
  seeded again whenever the file's value changes (the way back in for a forgotten password).
- A session is a random cookie value; the database holds its SHA-256 only. Its CSRF token is an
  HMAC of the session under a key kept in the database, so it can be handed out again after a
  page reload without being stored.
- Failed logins are counted per client (an IPv4 address, an IPv6 /64: one client holds a whole
  /64); past a few, each one locks that client out for twice as long as the last (429 +
  Retry-After), up to `MAX_LOCKOUT_S`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from node.admin import tables
from node.db.shared_state import SharedFailures
from node.db.store import Store
from node.errors import BadRequest, RateLimited, Unauthorized

log = logging.getLogger("nutgate.admin")

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SESSION_TTL_S = 12 * 3600
FREE_FAILURES = 3
MAX_LOCKOUT_S = 900
MAX_COUNTED = 10_000  # clients whose failures are kept in memory
MIN_PASSWORD_LEN = 8


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(
        ["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)]
    )


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(computed, base64.b64decode(digest))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def lockout_s(failures: int) -> float:
    """No lockout for the first few failures, then twice as long each time, up to a limit."""
    if failures <= FREE_FAILURES:
        return 0.0
    return float(min(2 ** (failures - FREE_FAILURES), MAX_LOCKOUT_S))


def client_of(ip: str) -> str:
    """Whom a failed login counts against: an IPv4 address, or an IPv6 address's /64."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:  # "unknown", a Unix socket: as it is
        return ip
    if isinstance(address, ipaddress.IPv4Address):
        return ip
    if address.ipv4_mapped:  # an IPv4 peer on a dual-stack socket
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))


class Failures(Protocol):
    """Where failed logins are counted: this process, or the database several instances share
    (node.db.shared_state.SharedFailures)."""

    def locked_until(self, ip: str) -> float: ...

    def add(self, ip: str, now: float, lockout: Callable[[int], float]) -> None:
        """Count a failure; lock the address out for `lockout(failures so far)` from `now`."""

    def forget(self, ip: str) -> None: ...


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0


class MemoryFailures:
    def __init__(self) -> None:
        self._by_ip: dict[str, _Failures] = {}

    def locked_until(self, ip: str) -> float:
        entry = self._by_ip.get(ip)
        return 0.0 if entry is None else entry.locked_until

    def add(self, ip: str, now: float, lockout: Callable[[int], float]) -> None:
        if len(self._by_ip) > MAX_COUNTED:  # a flood of addresses must not grow memory forever,
            # nor lift the lockouts in force: those not locked out now are forgotten first
            self._by_ip = {k: e for k, e in self._by_ip.items() if e.locked_until > now}
            if len(self._by_ip) > MAX_COUNTED:
                self._by_ip.clear()
        entry = self._by_ip.setdefault(ip, _Failures())
        entry.count += 1
        if wait := lockout(entry.count):
            entry.locked_until = now + wait

    def forget(self, ip: str) -> None:
        self._by_ip.pop(ip, None)


class Throttle:
    """Failed logins per client address, with an exponential lockout."""

    def __init__(
        self, failures: Failures | None = None, clock: Callable[[], float] = time.monotonic
    ):
        self._failures = failures if failures is not None else MemoryFailures()
        self._clock = clock

    def check(self, ip: str) -> None:
        wait = self._failures.locked_until(client_of(ip)) - self._clock()
        if wait > 0:
            raise RateLimited(
                "too many failed logins; try again later",
                code="login_throttled",
                headers={"Retry-After": str(max(1, round(wait + 0.5)))},
            )

    def failed(self, ip: str) -> None:
        self._failures.add(client_of(ip), self._clock(), lockout_s)

    def succeeded(self, ip: str) -> None:
        self._failures.forget(client_of(ip))


class AdminAuth:
    def __init__(self, db: Store, session_ttl_s: int = SESSION_TTL_S):
        self.db = db
        self.session_ttl_s = session_ttl_s
        self.throttle = Throttle()
        if db.kind != "sqlite":  # several instances: one count of failures for all
            self.throttle = Throttle(SharedFailures(db), time.time)
        key = tables.get_secret(db, "csrf_key")
        if key is None:
            key = secrets.token_hex(32)
            tables.set_secret(db, "csrf_key", key)
        self._csrf_key = bytes.fromhex(key)

    def ensure_password(self, file_password: str) -> str | None:
        """Seed the password at start; returns a generated one (to print once), else None."""
        current = tables.get_secret(self.db, "password")
        if file_password:
            seeded = tables.get_secret(self.db, "file_password")
            if seeded is None or not verify_password(file_password, seeded):
                hashed = hash_password(file_password)
                tables.set_secret(self.db, "password", hashed)
                tables.set_secret(self.db, "file_password", hashed)
                self._drop_sessions()
            return None
        if current is not None:
            return None
        generated = secrets.token_urlsafe(15)
        tables.set_secret(self.db, "password", hash_password(generated))
        return generated

    def set_password(self, password: str) -> None:
        """Make `password` the password (the dev stack's); sessions end only if it changed."""
        stored = tables.get_secret(self.db, "password")
        if stored is None or not verify_password(password, stored):
            tables.set_secret(self.db, "password", hash_password(password))
            self._drop_sessions()

    def reset_password(self) -> str:
        """A new random password (returned to print once); every session is ended."""
        password = secrets.token_urlsafe(15)
        tables.set_secret(self.db, "password", hash_password(password))
        self._drop_sessions()
        return password

    async def login(self, password: str, ip: str) -> str:
        """A new session's cookie value, or Unauthorized / RateLimited."""
        self.throttle.check(ip)
        # counted before the slow check, so guesses sent in parallel meet the lockout too
        self.throttle.failed(ip)
        stored = tables.get_secret(self.db, "password") or ""
        if not await asyncio.to_thread(verify_password, password, stored):
            log.warning("admin login failed from %s", ip)
            raise Unauthorized("wrong password", code="invalid_password")
        self.throttle.succeeded(ip)
        token = secrets.token_urlsafe(32)
        now = int(time.time())
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM admin_sessions WHERE expires_at < ?", (now,))
            conn.execute(
                "INSERT INTO admin_sessions (id_hash, created_at, expires_at, ip)"
                " VALUES (?, ?, ?, ?)",
                (_sha256(token), now, now + self.session_ttl_s, ip),
            )
        log.info("admin login from %s", ip)
        return token

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        row = self.db.query_one(
            "SELECT expires_at FROM admin_sessions WHERE id_hash = ?", (_sha256(token),)
        )
        return row is not None and int(row["expires_at"]) > time.time()

    def csrf_token(self, session: str) -> str:
        return hmac.new(self._csrf_key, session.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: str, sent: str) -> bool:
        return hmac.compare_digest(self.csrf_token(session).encode(), sent.encode())

    def logout(self, token: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM admin_sessions WHERE id_hash = ?", (_sha256(token),))

    async def change_password(self, session: str, current: str, new: str) -> None:
        """Needs the current password; every other session is ended."""
        stored = tables.get_secret(self.db, "password") or ""
        if not await asyncio.to_thread(verify_password, current, stored):
            raise BadRequest("the current password is wrong", param="current_password")
        if len(new) < MIN_PASSWORD_LEN:
            raise BadRequest(
                f"the new password must have at least {MIN_PASSWORD_LEN} characters",
                param="new_password",
            )
        hashed = await asyncio.to_thread(hash_password, new)
        tables.set_secret(self.db, "password", hashed)
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM admin_sessions WHERE id_hash != ?", (_sha256(session),))

    def _drop_sessions(self) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM admin_sessions")
