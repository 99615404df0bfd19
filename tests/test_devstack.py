"""`nutgate run`, as a newcomer meets it: start it, pay the printed token, Ctrl-C, nothing left."""

from __future__ import annotations

import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from node.dev.demo_upstream import DemoUpstream, answer_words
from node.dev.devmint import DevStackError, find_mint_python
from node.dev.procs import free_port
from tests.support.devstack import NUTGATE, READY_TIMEOUT_S, Stack
from tests.support.mints import MINT_PYTHON
from tests.support.servers import ThreadedServer


def _alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid`, from /proc's parent links."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # fails only on a listener
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Stack, dict[str, int]]]:
    if not MINT_PYTHON.exists():
        pytest.fail(f"{MINT_PYTHON} missing: run `make dev`")
    ports = {"node": free_port(), "mint": free_port()}
    args = [str(NUTGATE), "run", "--fresh", "--port", str(ports["node"])]
    args += ["--mint-port", str(ports["mint"]), "--amount", "300"]
    running = Stack(args, tmp_path / "stderr.txt")
    yield running, ports
    if running.proc.poll() is None:  # the test failed before its SIGINT: still leave nothing
        running.proc.send_signal(signal.SIGINT)
        running.proc.wait(20)


def test_run_prints_a_token_the_openai_sdk_can_spend_and_ctrl_c_leaves_nothing(
    stack: tuple[Stack, dict[str, int]],
) -> None:
    running, ports = stack
    proc, out = running.proc, running.banner()
    assert "starting the dev mint…" in out
    assert "demo upstream — canned answers, not a real LLM" in out
    node_url = re.search(r"^\s+node\s+(http://\S+)$", out, re.M)
    token = re.search(r"^(cashuB\S+)$", out, re.M)
    mint_pid = re.search(r"pid (\d+)", out)
    assert node_url and token and mint_pid, out
    assert node_url.group(1) == f"http://127.0.0.1:{ports['node']}"
    assert f'api_key="{token.group(1)}"' in out  # the SDK snippet is ready to paste
    assert f"Authorization: Bearer {token.group(1)}" in out  # so is the curl line

    client = OpenAI(base_url=node_url.group(1) + "/v1", api_key=token.group(1), max_retries=0)
    reply = client.chat.completions.create(
        model="demo-small", messages=[{"role": "user", "content": "Hello, dev stack!"}]
    )
    assert "canned answer" in (reply.choices[0].message.content or "")
    stream = client.chat.completions.create(
        model="demo-large", messages=[{"role": "user", "content": "again"}], stream=True
    )
    assert "not a real LLM" in "".join(
        c.choices[0].delta.content or "" for c in stream if c.choices
    )

    children = _descendants(proc.pid)
    assert int(mint_pid.group(1)) in children
    proc.send_signal(signal.SIGINT)
    assert proc.wait(20) == 0
    assert not [pid for pid in children if _alive(pid)]
    assert _port_free(ports["mint"]) and _port_free(ports["node"])


def test_ctrl_c_while_the_mint_starts_stops_it_too(stack: tuple[Stack, dict[str, int]]) -> None:
    running, ports = stack
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not (children := _descendants(running.proc.pid)):
        assert time.monotonic() < deadline and running.proc.poll() is None
        time.sleep(0.05)
    running.proc.send_signal(signal.SIGINT)
    assert running.proc.wait(20) == 0
    assert not [pid for pid in children if _alive(pid)]
    assert _port_free(ports["mint"])
    assert "Ctrl-C stops" not in "".join(running.lines)


def test_a_missing_dev_mint_venv_is_an_error_that_says_to_run_make_dev(
    tmp_path: Path,
) -> None:
    with pytest.raises(DevStackError, match="make dev"):
        find_mint_python([tmp_path])
    (tmp_path / ".venv-mint" / "bin").mkdir(parents=True)
    (tmp_path / ".venv-mint" / "bin" / "python").touch()
    assert find_mint_python([tmp_path / "elsewhere", tmp_path]).parent.parent.parent == tmp_path


def test_demo_upstream_labels_itself_and_reports_usage() -> None:
    server = ThreadedServer(lambda: DemoUpstream().app).start()
    try:
        client = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(
            model="anything", messages=[{"role": "user", "content": "ping"}], max_tokens=5
        )
    finally:
        server.stop()
    assert reply.choices[0].message.content == "".join(answer_words("ping", 5))
    assert reply.usage is not None and reply.usage.completion_tokens == 5
