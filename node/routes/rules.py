"""A key's rules as a request body gives them (`/v1/keys`, `/v1/wallet/create`, the admin),
checked: a bad value is a 400 naming the field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from node.errors import BadRequest
from node.http.web import digits
from node.money.keys import PERIODS

MAX_MODELS = 200
_RESETS = {"daily": "day", "weekly": "week", "monthly": "month", **{p: p for p in PERIODS}}


def whole(body: dict[str, Any], name: str, least: int = 0) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not least <= value < 2**62:
        raise BadRequest(f"{name} must be a whole number of at least {least}", param=name)
    return value


def moment(body: dict[str, Any], name: str) -> int | None:
    """Unix seconds, or an ISO 8601 time (UTC unless it says otherwise)."""
    value = body.get(name)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return whole(body, name)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())
    raise BadRequest(f"{name} must be unix seconds or an ISO 8601 time", param=name)


def period(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.lower() not in _RESETS:
        raise BadRequest(f"{name} must be day, week, month or null", param=name)
    return _RESETS[value.lower()]


def _models(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) > MAX_MODELS
        or not all(isinstance(m, str) and 0 < len(m) <= 200 and m.isprintable() for m in value)
    ):
        raise BadRequest("models must be a list of model ids", param="models")
    return tuple(value)


def parse_rules(body: dict[str, Any]) -> dict[str, Any]:
    """The rules a body sets (only those it names), checked."""
    found: dict[str, Any] = {}
    if "name" in body:
        name = body["name"]
        if not isinstance(name, str) or len(name) > 200 or not name.isprintable():
            raise BadRequest(
                "name must be a string of at most 200 printable characters", param="name"
            )
        found["name"] = name
    if "spend_limit_msat" in body:
        found["spend_limit_msat"] = whole(body, "spend_limit_msat")
    if "limit_period" in body:
        found["limit_period"] = period(body["limit_period"], "limit_period")
    if "expires_at" in body:
        found["expires_at"] = moment(body, "expires_at")
    if "models" in body:
        found["models"] = _models(body["models"])
    if "per_minute" in body:
        found["per_minute"] = whole(body, "per_minute", least=1)
    return found


def creation_rules(body: dict[str, Any]) -> dict[str, Any]:
    """The rules a new key is created with: ours, or routstr-core's `balance_limit`,
    `balance_limit_reset` and `validity_date` (query parameters are strings: numbers read;
    one too long for any rule stays a string, which the rule refuses)."""
    given = {
        k: n if isinstance(v, str) and (n := digits(v, 19)) is not None else v
        for k, v in body.items()
    }
    names = {"balance_limit": "spend_limit_msat", "balance_limit_reset": "limit_period"}
    names["validity_date"] = "expires_at"
    for theirs, ours in names.items():
        if theirs in given and ours not in given:
            given[ours] = given[theirs]
    found = parse_rules({k: v for k, v in given.items() if k != "name"})
    return {k: v for k, v in found.items() if v is not None}
