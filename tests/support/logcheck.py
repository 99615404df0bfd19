"""A pytest plugin: every log record the suite produces is checked for secrets.

One handler on the root logger, at DEBUG, for the whole session, sees the records of the test
process and of the nodes running in its threads, before any redaction: a token, key or password
found there is a leak in the code that logged it, and fails the test during which it appeared.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from node.logs import JsonFormatter, redact

# Loggers of the clients the tests drive the node with (the OpenAI and Anthropic SDKs and their
# HTTP stack): at DEBUG they print the change tokens the node hands back, the client's business.
CLIENT_LOGGERS = ("httpcore", "httpx", "openai", "anthropic")


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """A record's structured fields (`extra={"fields": {...}}`); a record without fails."""
    fields = getattr(record, "fields", None)
    assert isinstance(fields, dict), record
    return fields


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())  # renders message, structured fields and traceback
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(CLIENT_LOGGERS):
            return  # the tests' own HTTP clients logging what the node sent them
        try:
            self.lines.append(self.format(record))
        except Exception:  # a record that cannot be rendered is still looked at
            self.lines.append(f"{record.msg!r} {record.args!r}")


@pytest.fixture(scope="session", autouse=True)
def log_recorder() -> Iterator[Recorder]:
    recorder = Recorder()
    root = logging.getLogger()
    level = root.level
    root.addHandler(recorder)
    root.setLevel(logging.DEBUG)
    for name in CLIENT_LOGGERS:  # their DEBUG chatter is most of the volume and none of ours
        logging.getLogger(name).setLevel(logging.WARNING)
    yield recorder
    root.removeHandler(recorder)
    root.setLevel(level)
    leaks = secrets_in(recorder.lines)
    assert not leaks, f"secrets in the suite's logs: {leaks[:5]}"


@pytest.fixture(autouse=True)
def no_secrets_in_logs(log_recorder: Recorder) -> Iterator[None]:
    start = len(log_recorder.lines)
    yield
    leaks = secrets_in(log_recorder.lines[start:])
    if leaks:
        pytest.fail(f"{len(leaks)} log line(s) held a secret, e.g. {leaks[0]}", pytrace=False)


def secrets_in(lines: list[str]) -> list[str]:
    """The lines that redaction would change, shown redacted (the report must not leak)."""
    return [redact(line) for line in lines if redact(line) != line]
