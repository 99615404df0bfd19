"""`make run`, then the operator commands its banner prints, as a newcomer runs them: each acts
on the running node's data (./data/dev): the key pays, the password logs in, the audit counts
the node's accounts; a restart prints the admin page and a password that works again."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

from node.dev import devstack
from tests.support.admin_client import AdminClient
from tests.support.devstack import DevStack
from tests.support.mints import MINT_PYTHON

README = Path(__file__).resolve().parents[1] / "README.md"
ENV = {k: v for k, v in os.environ.items() if not k.startswith("NUTGATE_")}


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[DevStack]:
    if not MINT_PYTHON.exists():
        pytest.fail(f"{MINT_PYTHON} missing: run `make dev`")
    stack = DevStack(tmp_path)
    yield stack
    stack.stop()


def run(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A command line as the operator pastes it into a shell in `cwd`."""
    return subprocess.run(
        shlex.split(command), cwd=cwd, env=ENV, capture_output=True, text=True, timeout=60
    )


def printed(banner: str) -> tuple[str, str, dict[str, str]]:
    """(node URL, admin password, operator commands by name) from the banner."""
    node = re.search(r"^\s+node\s+(http://\S+)$", banner, re.M)
    admin = re.search(r"^\s+admin page\s+(http://\S+)/admin\s+\(password: (\S+)\)$", banner, re.M)
    assert node and admin and admin.group(1) == node.group(1), banner
    lines = [line.strip() for line in banner.splitlines() if " --config " in line]
    commands = {
        name: next(c for c in lines if f" {name} " in c) for name in ("keys", "admin", "audit")
    }
    return node.group(1), admin.group(2), commands


async def logs_in(url: str, password: str) -> bool:
    async with AdminClient(url) as admin:
        status, _ = await admin.login(password)
        return status == 200


def test_the_banners_operator_commands_act_on_the_running_node(dev: DevStack) -> None:
    banner = dev.start()
    url, password, commands = printed(banner)
    assert "--config data/dev/nutgate.toml" in commands["keys"], commands
    assert asyncio.run(logs_in(url, password))
    token = re.search(r"^(cashuB\S+)$", banner, re.M)
    assert token
    hello: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
    OpenAI(base_url=url + "/v1", api_key=token.group(1), max_retries=0).chat.completions.create(
        model="demo-small",
        messages=hello,
    )

    created = run(commands["keys"], dev.home)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    reply = OpenAI(base_url=url + "/v1", api_key=key, max_retries=0).chat.completions.create(
        model="demo-small",
        messages=hello,
    )
    assert "canned answer" in (reply.choices[0].message.content or "")

    audit = run(commands["audit"], dev.home)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "2 accounts" in audit.stdout and "audit clean" in audit.stdout, audit.stdout

    reset = run(commands["admin"], dev.home)
    assert reset.returncode == 0, reset.stderr
    new_password = reset.stdout.strip().rsplit(" ", 1)[-1]
    assert asyncio.run(logs_in(url, new_password))
    assert not asyncio.run(logs_in(url, password))

    # Without --config in the checkout: the dev stack's data, said so; elsewhere: refused.
    bare = run(commands["audit"].replace(" --config data/dev/nutgate.toml", ""), dev.home)
    assert bare.returncode == 0 and "2 accounts" in bare.stdout, bare.stdout + bare.stderr
    assert "using the dev stack's data/dev/nutgate.toml" in bare.stderr
    (dev.home / "elsewhere").mkdir()
    stray = run(
        commands["keys"].replace("--config data/dev/nutgate.toml", ""), dev.home / "elsewhere"
    )
    assert stray.returncode != 0 and "no node has run on" in stray.stderr
    assert not (dev.home / "elsewhere" / "data").exists()

    # A restart prints the admin page and a password that works, the same one as before.
    dev.stop()
    again = dev.start()
    assert printed(again)[1] == password
    assert asyncio.run(logs_in(url, password))


def readme_paying_examples(node_url: str, token: str) -> tuple[str, str]:
    """The README's first curl and Python examples of paying, with this stack's URL and token."""
    text = README.read_text()
    paying = text[text.index("## Paying") :]
    examples = []
    for language in ("sh", "python"):
        found = re.search(rf"```{language}\n(.*?)```", paying, re.S)
        assert found, language
        example = found.group(1).replace("http://127.0.0.1:8000", node_url)
        examples.append(example.replace("cashuB...", token))
    return examples[0], examples[1]


def test_the_readme_examples_run_on_the_dev_stack_and_its_data_is_private(dev: DevStack) -> None:
    parser = argparse.ArgumentParser()
    devstack.add_arguments(parser)
    assert parser.parse_args([]).port == 8000  # the port the README's examples use
    banner = dev.start()
    url = printed(banner)[0]
    token = re.search(r"^(cashuB\S+)$", banner, re.M)
    assert token
    curl, python = readme_paying_examples(url, token.group(1))
    answer = subprocess.run(["sh", "-c", curl], capture_output=True, text=True, timeout=60)
    assert answer.returncode == 0 and "canned answer" in answer.stdout, answer.stdout
    ran = subprocess.run([sys.executable, "-c", python], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0 and "canned answer" in ran.stdout, ran.stdout + ran.stderr
    assert ran.stdout.strip().endswith("msat")
    data = dev.home / "data" / "dev"  # and what it keeps there is private
    for name in ("nutgate.sqlite3", "devstack.json", "nutgate.toml", "wallet.seed"):
        assert (data / name).stat().st_mode & 0o777 == 0o600, name
    for extra in data.glob("nutgate.sqlite3-*"):
        assert extra.stat().st_mode & 0o777 == 0o600, extra.name
