"""Lightning addresses (LUD-16) to invoices, by LNURL-pay (LUD-06): `name@host` is
`https://host/.well-known/lnurlp/name`, whose answer names a callback that, given an amount
in msat, returns a bolt11 invoice. The node checks that invoice before paying it: its amount
is the one asked, and its description hash is the SHA-256 of the metadata the host published.

A client chooses the host, so the node refuses hosts on private, loopback or link-local
addresses (it would fetch inside its own network), unless `[lightning] lnurl_allow_local` is
on (tests and local setups; it also allows plain http)."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
import socket
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

import wallet as cashu
from node.errors import BadRequest, UpstreamError
from wallet.bech32 import BECH32, decode_words, words_to_bytes

ADDRESS = re.compile(r"^([a-z0-9\-_.+]{1,64})@([a-z0-9\-.]{1,253}(?::\d{1,5})?)$")
TIMEOUT = aiohttp.ClientTimeout(total=10)
MAX_ANSWER_BYTES = 64 * 1024


class LnurlError(UpstreamError):
    default_code = "lnurl_failed"


def looks_valid(address: str) -> bool:
    return ADDRESS.match(address.strip().lower()) is not None or _bech32_url(address) is not None


def _bech32_url(text: str) -> str | None:
    """The URL an `lnurl1…` string encodes (LUD-01), if it is one."""
    if not text.strip().lower().startswith("lnurl1"):
        return None
    try:
        hrp, words = decode_words(text.strip(), BECH32)
        url = words_to_bytes(words).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return url if hrp == "lnurl" and url.startswith(("https://", "http://")) else None


def _pay_url(address: str, scheme: str) -> str:
    """The LNURL-pay URL of a Lightning address (LUD-16) or of an lnurl1… string."""
    url = _bech32_url(address)
    if url is not None:
        if urlsplit(url).scheme != scheme:
            raise BadRequest(f"the LNURL must be {scheme}", param="lightning_address")
        return url
    match = ADDRESS.match(address.strip().lower())
    if match is None:
        raise BadRequest("lightning_address must look like name@host", param="lightning_address")
    name, host = match.groups()
    return f"{scheme}://{host}/.well-known/lnurlp/{name}"


async def invoice_for(
    session: aiohttp.ClientSession, address: str, amount_msat: int, allow_local: bool
) -> str:
    """A bolt11 invoice of `amount_msat` from the Lightning address, checked."""
    scheme = "http" if allow_local else "https"
    url = _pay_url(address, scheme)
    host = urlsplit(url).netloc
    pay = await _get(session, url, allow_local)
    if pay.get("tag") != "payRequest" or not isinstance(pay.get("callback"), str):
        raise LnurlError(f"{host} answered no LNURL-pay request", code="lnurl_failed")
    low, high, metadata = pay.get("minSendable"), pay.get("maxSendable"), pay.get("metadata")
    if not isinstance(low, int) or not isinstance(high, int) or not isinstance(metadata, str):
        raise LnurlError(f"{host} answered an incomplete LNURL-pay request")
    if not low <= amount_msat <= high:
        raise BadRequest(
            f"{host} accepts from {low // 1000} to {high // 1000} sat",
            code="amount_out_of_range",
            param="amount",
        )
    callback = pay["callback"]
    if urlsplit(callback).scheme != scheme:
        raise LnurlError(f"{host}'s callback is not {scheme}")
    joiner = "&" if "?" in callback else "?"
    answer = await _get(session, f"{callback}{joiner}amount={amount_msat}", allow_local)
    bolt11 = answer.get("pr")
    if not isinstance(bolt11, str):
        raise LnurlError(f"{host} gave no invoice ({str(answer.get('reason'))[:200]})")
    _check(bolt11, amount_msat, metadata, host)
    return bolt11


def _check(bolt11: str, amount_msat: int, metadata: str, host: str) -> None:
    try:
        invoice = cashu.decode_bolt11(bolt11)
    except cashu.TokenInvalid as exc:
        raise LnurlError(f"{host} gave an invalid invoice: {exc}") from None
    if invoice.amount_msat != amount_msat:
        raise LnurlError(
            f"{host} gave an invoice for another amount than asked",
            code="invoice_amount_mismatch",
        )
    if invoice.description_hash != hashlib.sha256(metadata.encode()).hexdigest():
        raise LnurlError(
            f"{host} gave an invoice whose description hash is not its metadata's",
            code="invoice_description_mismatch",
        )


async def _get(session: aiohttp.ClientSession, url: str, allow_local: bool) -> dict[str, Any]:
    host = urlsplit(url).hostname or ""
    if not allow_local:
        await refuse_local(host, "the Lightning address's host", "lightning_address")
    try:
        async with session.get(url, timeout=TIMEOUT, allow_redirects=False) as resp:
            raw = await resp.content.read(MAX_ANSWER_BYTES + 1)
            status = resp.status
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise LnurlError(
            f"the Lightning address's host {host} cannot be reached ({type(exc).__name__})",
            code="lnurl_unreachable",
        ) from None
    try:
        payload = orjson.loads(raw) if len(raw) <= MAX_ANSWER_BYTES else None
    except orjson.JSONDecodeError:
        payload = None
    if status != 200 or not isinstance(payload, dict):
        raise LnurlError(f"{host} answered {status}, not an LNURL answer")
    if payload.get("status") == "ERROR":
        raise LnurlError(f"{host} refused: {str(payload.get('reason'))[:200]}")
    return payload


async def refuse_local(host: str, what: str, param: str) -> None:
    """A 400 if `host` (a client's choice) resolves to a private, loopback or link-local
    address: the node would reach inside its own network."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, 443, type=socket.SOCK_STREAM)
    except OSError:
        raise LnurlError(f"{what} {host} cannot be resolved", code="lnurl_unreachable") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if not ip.is_global:
            raise BadRequest(
                f"{what} {host} is not on the public internet",
                code="lnurl_host_refused",
                param=param,
            )
