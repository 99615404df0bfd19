"""Logging: JSON lines on stderr, and a redaction filter on every handler.

No Cashu token, payment request, API key, Bearer value or password may reach a log line, even
when a bug or a library logs one. `RedactFilter` rewrites each record (message, arguments,
traceback, structured fields) before any handler formats it; `configure_logging` puts it on
every handler of the root logger, together with the literal secrets from the configuration
(upstream keys, the admin password, the nostr key), which have no recognizable shape.

Structured fields travel in `extra={"fields": {...}}` and come out as top-level JSON keys.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import Any

import orjson

from node.settings import Settings

REDACTED = "[redacted]"

# Shapes of secrets. Cashu tokens are base64(url) after their prefix; keys are our `sk-…` and
# most providers' (`sk-ant-…`, `sk-proj-…`); nostr private keys are bech32 `nsec1…`.
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b(cashu[AB]|creq[AB])[A-Za-z0-9_\-+/=]{4,}"), r"\1" + REDACTED),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{4,}"), "sk-" + REDACTED),
    (re.compile(r"\bnsec1[02-9ac-hj-np-z]{8,}"), "nsec1" + REDACTED),
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[^\s\"',;]+"), r"\1\2" + REDACTED),
    (
        # key=value, key: value, "key": "value" for names that always hold a secret
        re.compile(
            r"(?i)((?:password|passwd|secret|api[_-]?key|token|nsec|x-cashu|authorization"
            r"|cookie|csrf[_-]?token)[\"']?\s*[:=]\s*[\"']?)(?!\[redacted\])[^\s\"',;&}]+"
        ),
        r"\1" + REDACTED,
    ),
]

MIN_LITERAL = 6  # shorter configured "secrets" would redact ordinary words


# Every pattern above starts with one of these words (in any case): a line without any of them
# (most lines, e.g. each request's access line) needs one test instead of five substitutions.
# For ASCII text the test is a few substring searches, several times cheaper than the regex,
# which stays for the rest (its case folding matches more than str.lower, e.g. "ı" for "i").
_SUSPECT_WORDS = (
    "cashu", "creq", "sk-", "nsec", "bearer", "basic", "passw", "secret", "api", "token",
    "authorization", "cookie", "csrf",
)  # fmt: skip
_SUSPECT = re.compile("(?i)" + "|".join(map(re.escape, _SUSPECT_WORDS)))


def _suspect(text: str) -> bool:
    if not text.isascii():
        return _SUSPECT.search(text) is not None
    lowered = text.lower()
    for word in _SUSPECT_WORDS:  # noqa: SIM110 (a loop costs less than any() of a generator)
        if word in lowered:
            return True
    return False


def _flat_texts(fields: dict[str, Any]) -> str | None:
    """An access line's fields are flat scalars: their strings joined for one search over
    them all, not one per value (None: a value is something else, to be walked)."""
    texts = []
    for value in fields.values():
        kind = type(value)  # the exact types first: isinstance of a union costs more
        if kind is str:
            texts.append(value)
        elif kind is int or kind is float or value is None:
            continue
        elif isinstance(value, str):
            texts.append(value)
        elif not isinstance(value, int | float):
            return None
    return "\n".join(texts)


def redact(text: str, literals: Iterable[str] = ()) -> str:
    for literal in literals:
        text = text.replace(literal, REDACTED)
    if not _suspect(text):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactFilter(logging.Filter):
    """Rewrites a record so that no secret survives into any handler's output."""

    def __init__(self, literals: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret containing another is replaced whole.
        self.literals = sorted({s for s in literals if len(s) >= MIN_LITERAL}, key=len)[::-1]

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        fields = getattr(record, "fields", None)
        fields = fields if isinstance(fields, dict) else None
        flat = None if fields is None else _flat_texts(fields)
        if flat is not None and not self._may_hide(f"{message}\n{flat}"):
            record.msg, record.args = message, None  # an access line: one search, no rewrite
            fields = None
        else:
            record.msg, record.args = self._clean(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self._clean(record.stack_info)
        # fields not flat (None) are walked; flat ones rewritten only where a secret may be
        if fields is not None and (flat is None or self._may_hide(flat)):
            record.fields = {k: self._clean_value(v) for k, v in fields.items()}
        return True

    def _may_hide(self, text: str) -> bool:
        """Whether `_clean` could change `text` (a secret's shape, or a literal secret)."""
        if _suspect(text):
            return True
        for literal in self.literals:  # noqa: SIM110 (a loop costs less than any() of a generator)
            if literal in text:
                return True
        return False

    def _clean(self, text: str) -> str:
        return redact(text, self.literals)

    def _clean_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._clean(value)
        if isinstance(value, dict):
            return {k: self._clean_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean_value(v) for v in value]
        return value


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the record's fields, exc."""

    _second = (-1, "")  # the last second formatted, and its text: most lines share one

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second[0]:
            self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        line: dict[str, Any] = {
            "ts": f"{self._second[1]}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return orjson.dumps(line, default=str).decode()


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class TurnBufferedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that, on the event loop, writes the lines of one loop turn at once.

    Under load one turn finishes many requests: their access lines go out in one write instead
    of a write and a flush each. A warning or worse is written at once (after what is
    buffered, keeping the order), and so is everything logged off the loop's thread. A process
    killed outright loses at most the INFO lines of the turn it was in.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        if record.levelno < logging.WARNING:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                self._lines.append(line)
                if len(self._lines) == 1:
                    loop.call_soon(self.flush)
                return
        self._lines.append(line)
        self.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            lines, self._lines = self._lines, []
            try:
                if lines:
                    self.stream.write("".join(lines))
                self.stream.flush()
            except (OSError, ValueError):  # a closed or broken stream must not break the node
                pass


def configure_logging(
    level: str = "INFO", fmt: str = "json", secrets: Iterable[str] = ()
) -> logging.Handler:
    """Replace the root logger's handlers by one stderr handler; redact on every handler."""
    # Nothing we write shows the caller, thread or process: don't compute them for each record
    # (the logging HOWTO's "Optimization" switches).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = TurnBufferedHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    protect_handlers(root, RedactFilter(secrets))
    return handler


def protect_handlers(logger: logging.Logger, redactor: RedactFilter) -> None:
    """Put the redaction filter on each of the logger's handlers that lacks one."""
    for handler in logger.handlers:
        if not any(isinstance(f, RedactFilter) for f in handler.filters):
            handler.addFilter(redactor)


def secrets_of(settings: Settings) -> list[str]:
    """Configured secrets with no recognizable shape: redacted literally wherever they appear."""
    found = [settings.node.admin_password, settings.nostr.nsec]
    found += [u.api_key for u in settings.upstreams]
    return [s for s in found if s]
