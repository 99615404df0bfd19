"""HTTP calls to one Cashu mint over the node's aiohttp session, with a timeout on each.

Errors are mapped once, here: network failure, timeout or 5xx -> `MintUnavailable` (the outcome
is unknown, callers keep their pending rows); 400 with code 11001 -> `TokenSpent`; any other
refusal -> `MintError(code, detail)`; an answer that is not what the NUT says -> `MintError`,
except a swap's 2xx answer -> `MintAnswerGarbled` (the mint may have acted: outcome unknown).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from wallet import crypto
from wallet.errors import MintAnswerGarbled, MintError, MintUnavailable, TokenSpent
from wallet.tokens import Proof

SPENT = 11001
# No NUT answer comes near this (a swap of 1000 proofs' signatures is ~0.3 MB): more is a mint
# misbehaving, never read whole into memory
MAX_ANSWER_BYTES = 4 * 2**20
# Nutshell (0.20) refuses outputs of an unknown or retired keyset with 11000 and these words:
# given their NUT-02 codes, so callers see `MintError.keyset_refused`
KEYSET_REFUSALS = {"keyset id unknown.": 12001, "keyset id inactive.": 12002}


@dataclass(frozen=True)
class KeysetInfo:
    id: str
    unit: str
    active: bool
    input_fee_ppk: int


@dataclass(frozen=True)
class BlindedMessage:
    amount: int
    keyset_id: str
    b_: str

    def to_json(self) -> dict[str, Any]:
        return {"amount": self.amount, "id": self.keyset_id, "B_": self.b_}


@dataclass(frozen=True)
class BlindSignature:
    amount: int
    keyset_id: str
    c_: str
    dleq_e: str | None
    dleq_s: str | None


def normalize_url(url: str) -> str:
    """The form mint URLs are compared and stored in: no trailing slash, lowercase scheme/host."""
    url = url.strip().rstrip("/")
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}"


class MintClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        timeout_s: float,
        on_error: Callable[[str, str], None] | None = None,
        *,
        follow_redirects: bool = True,
    ) -> None:
        """`follow_redirects`: False for a mint a client named (wallet.foreign): its host was
        checked, a redirect would lead the node to one that was not."""
        self.url = normalize_url(url)
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._on_error = on_error
        self._redirects = follow_redirects

    async def _call(
        self, method: str, path: str, body: Any = None, timeout_s: float | None = None
    ) -> Any:
        try:
            return await self._exchange(method, path, body, timeout_s)
        except MintUnavailable:
            self._report("unreachable")
            raise
        except TokenSpent:
            raise  # the client's token, not the mint's fault
        except MintError:
            self._report("refused")
            raise

    def _report(self, kind: str) -> None:
        if self._on_error is not None:
            self._on_error(self.url, kind)

    async def _exchange(
        self, method: str, path: str, body: Any = None, timeout_s: float | None = None
    ) -> Any:
        data = None if body is None else orjson.dumps(body)
        headers = {"Content-Type": "application/json"} if data is not None else None
        timeout = self._timeout if timeout_s is None else aiohttp.ClientTimeout(total=timeout_s)
        try:
            async with self._session.request(
                method,
                self.url + path,
                data=data,
                headers=headers,
                timeout=timeout,
                allow_redirects=self._redirects,
            ) as resp:
                raw = await _read_bounded(resp.content)
                status = resp.status
        except aiohttp.ClientConnectorError as e:  # no connection: the request never left
            raise MintUnavailable(f"mint {self.url} unreachable: {e}", maybe_sent=False) from e
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise MintUnavailable(f"mint {self.url} unreachable: {type(e).__name__}") from e
        if status >= 500 and status != 501:
            raise MintUnavailable(f"mint {self.url} answered {status}")
        if len(raw) > MAX_ANSWER_BYTES or 300 <= status < 400:
            cls = _Unreadable if status < 300 else MintError  # (a 2xx: it may have acted)
            raise cls(None, f"answer from {path} too large or redirected ({status})")
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            cls = _Unreadable if status < 400 else MintError
            raise cls(None, f"non-JSON answer ({status}) from {path}") from None
        if status >= 400 or (isinstance(payload, dict) and "code" in payload and status != 200):
            code = payload.get("code") if isinstance(payload, dict) else None
            detail = str(payload.get("detail", "")) if isinstance(payload, dict) else str(raw)
            if code == 11000:
                code = KEYSET_REFUSALS.get(detail, code)
            if code == SPENT:
                raise TokenSpent(detail or "proofs already spent")
            raise MintError(code if isinstance(code, int) else None, detail or str(status))
        return payload

    async def keysets(self) -> list[KeysetInfo]:
        payload = await self._call("GET", "/v1/keysets")
        try:
            return [
                KeysetInfo(
                    id=str(k["id"]),
                    unit=str(k["unit"]),
                    active=bool(k["active"]),
                    input_fee_ppk=int(k.get("input_fee_ppk") or 0),
                )
                for k in payload["keysets"]
            ]
        except (KeyError, TypeError, ValueError) as e:
            raise MintError(None, f"bad /v1/keysets answer: {e}") from None

    async def keys(self, keyset_id: str) -> dict[int, str]:
        """The keyset's amount -> pubkey map, validated (NUT-01) and checked against its id."""
        payload = await self._call("GET", f"/v1/keys/{keyset_id}")
        try:
            (ks,) = [k for k in payload["keysets"] if k["id"] == keyset_id]
            keys = crypto.parse_keys(ks["keys"])
        except (KeyError, TypeError, ValueError) as e:
            raise MintError(None, f"bad keys for {keyset_id}: {e}") from None
        if keyset_id.startswith("00"):
            derived = crypto.keyset_id_v1(keys)
        else:
            fee, expiry = ks.get("input_fee_ppk"), ks.get("final_expiry")
            derived = crypto.keyset_id_v2(keys, str(ks.get("unit")), fee, expiry)
        if derived != keyset_id:
            raise MintError(None, f"keyset id {keyset_id} does not match its keys")
        return {a: k.format(compressed=True).hex() for a, k in keys.items()}

    async def swap(
        self, inputs: list[Proof], outputs: list[BlindedMessage]
    ) -> list[BlindSignature]:
        body = {"inputs": [p.to_json() for p in inputs], "outputs": [o.to_json() for o in outputs]}
        try:  # a 2xx we cannot read: the swap may have happened all the same
            payload = await self._call("POST", "/v1/swap", body)
            return _signatures(payload, "signatures", len(outputs))
        except _Unreadable as e:
            raise MintAnswerGarbled(f"mint {self.url} garbled its swap answer: {e.detail}") from e

    async def checkstate(self, ys: list[str]) -> dict[str, str]:
        """Y -> "UNSPENT" | "PENDING" | "SPENT" (NUT-07)."""
        payload = await self._call("POST", "/v1/checkstate", {"Ys": ys})
        try:
            return {str(s["Y"]): str(s["state"]) for s in payload["states"]}
        except (KeyError, TypeError) as e:
            raise MintError(None, f"bad /v1/checkstate answer: {e}") from None

    async def restore(self, outputs: list[BlindedMessage]) -> dict[str, BlindSignature]:
        """B_ -> signature, for those outputs the mint has signed (NUT-09)."""
        payload = await self._call(
            "POST", "/v1/restore", {"outputs": [o.to_json() for o in outputs]}
        )
        try:
            outs = [str(o["B_"]) for o in payload["outputs"]]
        except (KeyError, TypeError) as e:
            raise MintError(None, f"bad /v1/restore answer: {e}") from None
        key = "signatures" if "signatures" in payload else "promises"
        return dict(zip(outs, _signatures(payload, key, len(outs)), strict=True))

    async def info(self) -> dict[str, Any]:
        payload = await self._call("GET", "/v1/info")
        if not isinstance(payload, dict):
            raise MintError(None, "bad /v1/info answer")
        return payload

    async def mint_quote(self, amount_sat: int) -> MintQuote:
        """NUT-23: a bolt11 invoice for `amount_sat`, paid to this mint."""
        body = {"amount": amount_sat, "unit": "sat"}
        return _mint_quote(await self._call("POST", "/v1/mint/quote/bolt11", body))

    async def mint_quote_state(self, quote: str) -> MintQuote:
        return _mint_quote(await self._call("GET", f"/v1/mint/quote/bolt11/{quote}"))

    async def mint(self, quote: str, outputs: list[BlindedMessage]) -> list[BlindSignature]:
        """NUT-04: the signatures on `outputs` for a paid quote (a 2xx we cannot read: the mint
        may have signed all the same)."""
        body = {"quote": quote, "outputs": [o.to_json() for o in outputs]}
        try:
            payload = await self._call("POST", "/v1/mint/bolt11", body)
            return _signatures(payload, "signatures", len(outputs))
        except _Unreadable as e:
            raise MintAnswerGarbled(f"mint {self.url} garbled its mint answer: {e.detail}") from e

    async def melt_quote(self, bolt11: str) -> MeltQuote:
        body = {"request": bolt11, "unit": "sat"}
        return _melt_quote(await self._call("POST", "/v1/melt/quote/bolt11", body))

    async def melt_quote_state(self, quote: str) -> MeltQuote:
        return _melt_quote(await self._call("GET", f"/v1/melt/quote/bolt11/{quote}"))

    async def melt(
        self,
        quote: str,
        inputs: list[Proof],
        outputs: list[BlindedMessage],
        timeout_s: float,
    ) -> MeltQuote:
        """NUT-05/08: pay the quote's invoice with `inputs`; `outputs` are blank outputs for
        the unused fee reserve. A Lightning payment may take a while: `timeout_s` is longer."""
        body = {
            "quote": quote,
            "inputs": [p.to_json() for p in inputs],
            "outputs": [o.to_json() for o in outputs],
        }
        try:
            payload = await self._call("POST", "/v1/melt/bolt11", body, timeout_s)
            return _melt_quote(payload)
        except _Unreadable as e:
            raise MintAnswerGarbled(f"mint {self.url} garbled its melt answer: {e.detail}") from e


@dataclass(frozen=True)
class MintQuote:
    quote: str
    request: str
    amount: int
    state: str  # UNPAID | PAID | ISSUED
    expiry: int | None


@dataclass(frozen=True)
class MeltQuote:
    quote: str
    amount: int
    fee_reserve: int
    state: str  # UNPAID | PENDING | PAID
    expiry: int | None
    preimage: str | None
    change: list[BlindSignature]


def _mint_quote(payload: Any) -> MintQuote:
    try:
        state = str(payload["state"]).upper()
        if state not in ("UNPAID", "PAID", "ISSUED"):
            raise ValueError(f"state {state}")
        expiry = payload.get("expiry")
        return MintQuote(
            quote=str(payload["quote"]),
            request=str(payload["request"]),
            amount=int(payload["amount"]),
            state=state,
            expiry=None if expiry is None else int(expiry),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise _Unreadable(None, f"bad mint quote: {e}") from None


def _melt_quote(payload: Any) -> MeltQuote:
    try:
        state = str(payload["state"]).upper()
        if state not in ("UNPAID", "PENDING", "PAID"):
            raise ValueError(f"state {state}")
        change = payload.get("change") or []
        expiry = payload.get("expiry")
        return MeltQuote(
            quote=str(payload["quote"]),
            amount=int(payload["amount"]),
            fee_reserve=int(payload.get("fee_reserve") or 0),
            state=state,
            expiry=None if expiry is None else int(expiry),
            preimage=payload.get("payment_preimage"),
            change=_signatures({"c": change}, "c", len(change)),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise _Unreadable(None, f"bad melt quote: {e}") from None


class _Unreadable(MintError):
    """A success status whose body is not the NUT's answer (swap turns it into ambiguity)."""


def _signatures(payload: Any, key: str, count: int) -> list[BlindSignature]:
    try:
        sigs = [
            BlindSignature(
                amount=int(s["amount"]),
                keyset_id=str(s["id"]),
                c_=str(s["C_"]),
                dleq_e=(s.get("dleq") or {}).get("e"),
                dleq_s=(s.get("dleq") or {}).get("s"),
            )
            for s in payload[key]
        ]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise _Unreadable(None, f"bad signatures in answer: {e}") from None
    if len(sigs) != count:
        raise _Unreadable(None, f"expected {count} signatures, got {len(sigs)}")
    return sigs


async def _read_bounded(content: aiohttp.StreamReader) -> bytes:
    """The whole answer, or its first MAX_ANSWER_BYTES + 1 bytes if it is longer (read(n)
    would return what has arrived so far: an answer in several packets, cut short)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in content.iter_any():
        parts.append(chunk)
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            break
    return b"".join(parts)
