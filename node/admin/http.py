"""The admin API's HTTP side: the session cookie, the auth/CSRF guard, small parsing helpers."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from node.errors import BadRequest, Forbidden, Unauthorized
from node.http.web import digits
from node.parts import PARTS, Parts

COOKIE = "nutgate_admin"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def session_of(request: web.Request) -> str | None:
    session = request.cookies.get(COOKIE)
    return session if session is not None and session.isascii() else None  # ours are ASCII


def guarded(handler: Handler) -> Handler:
    """A valid session cookie, and for anything but a read, the session's X-CSRF-Token."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        auth = parts_of(request).admin
        session = session_of(request)
        if session is None or not auth.valid(session):
            raise Unauthorized("log in to the admin first", code="admin_login_required")
        if request.method not in SAFE_METHODS:
            sent = request.headers.get("X-CSRF-Token", "")
            if not auth.csrf_ok(session, sent):
                raise Forbidden("missing or wrong X-CSRF-Token header", code="csrf_failed")
        return await handler(request)

    return wrapper


def set_session_cookie(request: web.Request, response: web.Response, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=parts_of(request).admin.session_ttl_s,
        path="/admin",
        httponly=True,
        samesite="Strict",
        secure=over_https(request),
    )


def over_https(request: web.Request) -> bool:
    """The request reached the node over TLS, or reached a TLS proxy that says so: one listed
    in `[node] trusted_proxies` (anyone else could send X-Forwarded-Proto)."""
    if request.secure:
        return True
    proto = request.headers.get("X-Forwarded-Proto", "")
    if proto.rsplit(",", 1)[-1].strip().lower() != "https":  # the last: what the peer added
        return False
    return _trusted(request.remote, parts_of(request).settings.node.trusted_proxies)


def _trusted(peer: str | None, proxies: list[str]) -> bool:
    if not peer or not proxies:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:  # a Unix socket, say: no address to trust
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # an IPv4 peer on a dual-stack socket
    return any(address in ipaddress.ip_network(p) for p in proxies)


def parts_of(request: web.Request) -> Parts:
    return request.app[PARTS]


def int_query(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number", param=name) from None
    return max(lo, min(hi, value))


def id_number(raw: str, name: str, what: str) -> int:
    """An id from a path or query: ASCII digits ("²".isdigit() is true) within SQLite's 64-bit
    integers, its length checked first (int() refuses a string of over 4300 digits)."""
    number = digits(raw, 19)
    if number is None or number >= 2**63:
        raise BadRequest(f"{what} is a whole number below 2^63", param=name)
    return number


def str_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise BadRequest(f"{name} is required (a string)", param=name)
    return value
