"""Logs: one JSON access line per request, and no secret in any line, whatever is logged."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.dev.procs import free_port
from node.logs import (
    JsonFormatter,
    RedactFilter,
    TurnBufferedHandler,
    configure_logging,
    redact,
    secrets_of,
)
from node.settings import load_settings
from tests.conftest import NodeHandle
from tests.support.httpfetch import fetch
from tests.support.logcheck import fields_of
from tests.support.servers import ThreadedServer

TOKEN_A = "cashuAeyJ0b2tlbiI6W3sibWludCI6Imh0dHA6Ly9taW50In1dfQ=="
TOKEN_B = "cashuBo2FteCJodHRwczovL21pbnQuZXhhbXBsZS5jb21hdWNzYXRhdIGiYWlI"
REQUEST = "creqApWF0gaNhdGVub3N0cmFheKlucHJvZmlsZTFxeTI4d3VtbjhnaGo3dW45ZDNzaGp0bnl2"
KEY = "sk-Yx3kT9qLm2Pz8Rw4Vb7Nc1Hd"
NSEC = "nsec1vl029mgpspedva04g90vltkh6fvh240zqtv9k0t9af8935ke9laqsnlfe5"
SECRETS = [TOKEN_A, TOKEN_B, REQUEST, KEY, NSEC]


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"redeeming {TOKEN_A}", "redeeming cashuA[redacted]"),
        (f"token={TOKEN_B}&x=1", "token=[redacted]&x=1"),
        (f"payment request {REQUEST}", "payment request creqA[redacted]"),
        (f"key {KEY} unknown", "key sk-[redacted] unknown"),
        ("Authorization: Bearer abc.def-ghi", "Authorization: [redacted] [redacted]"),
        ("headers {'Authorization': 'Bearer zzz'}", "headers {'Authorization': '[redacted]"),
        ('{"admin_password": "hunter2", "name": "x"}', '{"admin_password": "[redacted]",'),
        ("password=hunter2 next", "password=[redacted] next"),
        (f"X-Cashu: {TOKEN_B}", "X-Cashu: [redacted]"),
        (f"nostr key {NSEC}", "nostr key nsec1[redacted]"),
        ("asked for 500 max_tokens, a task-runner ran", "asked for 500 max_tokens, a task-runner"),
        ("send cashuA… or cashuB… as the key", "send cashuA… or cashuB… as the key"),
    ],
)
def test_redaction_removes_secrets_and_keeps_the_rest(text: str, kept: str) -> None:
    cleaned = redact(text)
    assert kept in cleaned
    assert all(secret not in cleaned for secret in [*SECRETS, "hunter2", "abc.def", "zzz"])
    assert redact(cleaned) == cleaned  # idempotent: safe on every handler


@pytest.fixture
def private_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own (not propagating), so these deliberate secrets reach no other log."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactFilter(["upstream-key-without-shape"]))
    logger = logging.getLogger("nutgate.test.private")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield logger, out
    logger.removeHandler(handler)


def test_filter_cleans_arguments_fields_and_tracebacks(
    private_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = private_log
    logger.info("paid with %s by %s", TOKEN_A, KEY)
    logger.info("call", extra={"fields": {"auth": f"Bearer {KEY}", "nested": {"t": [TOKEN_B]}}})
    try:
        raise ValueError(f"mint refused {TOKEN_B} (upstream-key-without-shape)")
    except ValueError:
        logger.exception("redeem failed for %s", REQUEST)
    text = out.getvalue()
    assert all(secret not in text for secret in [*SECRETS, "upstream-key-without-shape"])
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == 3  # the traceback stays inside its line
    assert lines[0]["msg"] == "paid with cashuA[redacted] by sk-[redacted]"
    assert lines[1]["nested"] == {"t": ["cashuB[redacted]"]}
    assert "ValueError: mint refused cashuB[redacted]" in lines[2]["exc"]


def test_configured_secrets_are_redacted_on_every_root_handler(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        node={"admin_password": "correct horse battery", "data_dir": str(tmp_path)},
        upstreams=[{"name": "u", "base_url": "http://x/v1", "api_key": "gsk_plainlookingkey"}],
    )
    assert set(secrets_of(settings)) == {"correct horse battery", "gsk_plainlookingkey"}
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    try:
        handler = configure_logging("WARNING", "json", secrets_of(settings))
        assert isinstance(handler, logging.StreamHandler)
        out = io.StringIO()
        handler.setStream(out)
        logging.getLogger("nutgate.test").warning("password is correct horse battery")
        logging.getLogger("nutgate.test").info("not written at WARNING")
        assert json.loads(out.getvalue())["msg"] == "password is [redacted]"
        assert all(any(isinstance(f, RedactFilter) for f in h.filters) for h in root.handlers)
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved_handlers:
            root.addHandler(h)
        root.setLevel(saved_level)


def test_each_request_is_one_access_line_with_no_secret(
    node: NodeHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = node.new_key(1_000_000)
    body = {"model": "test-model", "messages": [{"role": "user", "content": TOKEN_A}]}
    paid = fetch(
        f"{node.url}/v1/chat/completions",
        "POST",
        {"Authorization": f"Bearer {key}", "X-Client-Note": TOKEN_B},
        body,
    )
    refused = fetch(
        f"{node.url}/v1/chat/completions?token={TOKEN_A}",
        "POST",
        {"Authorization": f"Bearer {TOKEN_B}"},
        b'{"not json' + TOKEN_A.encode(),
    )
    assert (paid.status, refused.status) == (200, 400)
    time.sleep(0.1)  # the access line is written as the handler returns, after the body
    access = {
        fields_of(r)["request_id"]: fields_of(r)
        for r in caplog.records
        if r.name == "nutgate.access"
    }
    line = access[paid.headers["x-request-id"]]
    assert line["route"] == "/v1/chat/completions" and line["model"] == "test-model"
    assert line["status"] == 200 and line["cost_msat"] > 0
    assert line["duration_ms"] >= line["upstream_ms"] > 0
    assert access[refused.headers["x-request-id"]]["path"] == "/v1/chat/completions"
    everything = caplog.text + json.dumps([r.__dict__.get("fields") for r in caplog.records])
    assert all(secret not in everything for secret in [TOKEN_A, TOKEN_B, key])


def test_serve_writes_json_lines_without_secrets(tmp_path: Path, upstream: ThreadedServer) -> None:
    port = free_port()
    config = tmp_path / "nutgate.toml"
    config.write_text(
        f'[node]\ndata_dir = "{tmp_path}"\nport = {port}\nadmin_password = "s3cret-admin-pw"\n'
        f'[pricing]\nbtc_usd = 100000\n[[upstreams]]\nname = "mock"\n'
        f'base_url = "{upstream.url}/v1"\napi_key = "plain-upstream-key"\n'
        '[[models]]\nid = "test-model"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if fetch(f"{url}/health").status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        reply = fetch(f"{url}/v1/models?key={KEY}", headers={"Authorization": f"Bearer {TOKEN_A}"})
        assert reply.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "nutgate.access"]
    assert any(a["request_id"] == reply.headers["x-request-id"] for a in access)
    for secret in [TOKEN_A, KEY, "s3cret-admin-pw", "plain-upstream-key"]:
        assert secret not in stderr


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


async def test_lines_of_one_loop_turn_go_out_in_one_write() -> None:
    stream = CountingStream()
    handler = TurnBufferedHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactFilter())
    log = logging.getLogger("nutgate.test-buffered")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.info("one %s", KEY)
        log.info("two")
        assert stream.writes == 0  # held until the end of this turn
        log.warning("three")  # written at once, after what was held
        assert stream.getvalue() == "INFO one sk-[redacted]\nINFO two\nWARNING three\n"
        log.info("four")
        log.info("five")
        await asyncio.sleep(0)
        assert stream.getvalue().endswith("WARNING three\nINFO four\nINFO five\n")
        assert stream.writes == 2
    finally:
        log.removeHandler(handler)


def test_off_the_event_loop_each_line_is_written_at_once() -> None:
    stream = CountingStream()
    handler = TurnBufferedHandler(stream)
    record = logging.LogRecord("x", logging.INFO, "", 0, "plain", None, None)
    handler.handle(record)
    assert stream.getvalue() == "plain\n"


def test_each_line_carries_its_own_time_in_utc_to_the_millisecond() -> None:
    formatter = JsonFormatter()

    def stamped(created: float) -> str:
        record = logging.LogRecord("t", logging.INFO, "", 0, "hello", None, None)
        record.created, record.msecs = created, (created % 1) * 1000
        return str(json.loads(formatter.format(record))["ts"])

    # 2026-11-23 01:02:03 UTC, then the same second, the next one, and back (clock stepped)
    assert stamped(1795395723.25) == "2026-11-23T01:02:03.250Z"
    assert stamped(1795395723.5) == "2026-11-23T01:02:03.500Z"
    assert stamped(1795395724.125) == "2026-11-23T01:02:04.125Z"
    assert stamped(1795395723.75) == "2026-11-23T01:02:03.750Z"
