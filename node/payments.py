"""Who pays for a request: an account found from the `Authorization` header."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from node.errors import Unauthorized
from node.ledger import hash_key

if TYPE_CHECKING:
    from node.context import Node
    from node.proxy import MeteredCall


@dataclass
class Payer:
    account_id: int

    async def finish(self, call: MeteredCall, in_band: bool = False) -> dict[str, Any]:
        """After settling: what to add to the answer (headers, or fields of the last chunk)."""
        return {}


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def resolve_payer(node: Node, request: web.Request) -> Payer:
    key = bearer(request)
    if key is None:
        raise Unauthorized("no API key: send 'Authorization: Bearer sk-…' or a Cashu token")
    account = node.ledger.find(hash_key(key))
    if account is None:
        raise Unauthorized("unknown API key")
    return Payer(account.id)
