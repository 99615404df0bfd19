"""docker/: checked statically (no docker engine or image registry on these machines), and by
Compose itself (`docker compose config`, or v1's `docker-compose config`) where it is installed.

The compose file parses with the expected services, volumes and health checks; the Dockerfiles
copy paths that exist, run only commands the slim Python image has, drop root, and start a
command this package really provides with a configuration that validates.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from node.cli import build_parser
from node.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
# What python:3.11-slim (Debian) has on its PATH that a Dockerfile here may use.
SLIM_COMMANDS = {"python", "pip", "groupadd", "useradd", "mkdir", "chown", "rm", "sh"}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def argv(args: str) -> list[str]:
    """A CMD / HEALTHCHECK command in exec (JSON) form or shell form."""
    args = re.sub(r"^(--\S+\s+)+", "", args)  # HEALTHCHECK options
    args = args.removeprefix("CMD ").strip()
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def env_of(pairs: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in pairs:
        if word == "ENV":
            env.update(dict(item.split("=", 1) for item in shlex.split(args)))
    return env


def shell_commands(script: str) -> list[str]:
    return [shlex.split(part)[0] for part in re.split(r"&&|;|\|\|", script) if part.strip()]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.mark.parametrize("name", ["Dockerfile", "mint.Dockerfile"])
def test_images_drop_root_and_use_only_commands_the_image_has(name: str) -> None:
    pairs = instructions(DOCKER / name)
    words = [w for w, _ in pairs]
    assert pairs[0] == ("FROM", "python:3.11-slim")
    user = [args for w, args in pairs if w == "USER"]
    assert user and user[-1] not in ("root", "0")
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN")
    for word, args in pairs:
        if word == "RUN":
            assert set(shell_commands(args)) <= SLIM_COMMANDS, args
        if word in ("CMD", "HEALTHCHECK"):
            assert argv(args)[0] in SLIM_COMMANDS | {"nutgate"}, args
    assert "HEALTHCHECK" in words and "CMD" in words


def test_node_image_copies_the_package_and_serves_on_its_port() -> None:
    pairs = instructions(DOCKER / "Dockerfile")
    copied = [shlex.split(args)[0] for w, args in pairs if w == "COPY"]
    assert all((ROOT / source).exists() for source in copied), copied
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {p.rstrip("*") for p in packages} <= set(copied)
    env = env_of(pairs)
    exposed = [args for w, args in pairs if w == "EXPOSE"]
    assert exposed == [env["NUTGATE_NODE__PORT"]]
    health = " ".join(argv(next(a for w, a in pairs if w == "HEALTHCHECK")))
    assert f"http://127.0.0.1:{env['NUTGATE_NODE__PORT']}/health" in health
    cmd = argv(next(a for w, a in pairs if w == "CMD"))
    assert cmd[0] in project["project"]["scripts"]
    args = build_parser().parse_args(cmd[1:])
    assert args.command == "serve" and args.config == "/etc/nutgate/nutgate.toml"


def test_the_shipped_config_validates_under_the_image_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in env_of(instructions(DOCKER / "Dockerfile")).items():
        if key.startswith("NUTGATE_"):
            monkeypatch.setenv(key, value)
    settings = load_settings(DOCKER / "nutgate.toml")
    assert (str(settings.node.data_dir), settings.node.host, settings.node.port) == (
        "/data",
        "0.0.0.0",
        8000,
    )
    assert settings.cashu.mints == ["http://mint:3338"]


def test_mint_image_pins_the_same_nutshell_as_make_install() -> None:
    dockerfile = (DOCKER / "mint.Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    pin = re.search(r'"cashu==[\d.]+" "marshmallow<4" "limits<5"', makefile)
    assert pin and pin.group(0) in dockerfile
    env = env_of(instructions(DOCKER / "mint.Dockerfile"))
    assert env["MINT_BACKEND_BOLT11_SAT"] == "FakeWallet"
    assert env["MINT_LISTEN_PORT"] == "3338"


def test_compose_runs_node_and_mint_with_volumes_and_health_checks(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(services) == {"node", "mint", "faucet"}
    for name, service in services.items():
        if name == "faucet":
            continue  # a one-shot tool: below
        build = service["build"]
        context = DOCKER / build["context"]
        assert (context / build["dockerfile"]).is_file(), name
        assert service["healthcheck"]["test"][0] == "CMD"
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])
        named = {v.split(":")[0] for v in service["volumes"] if not v.startswith(".")}
        assert named <= set(compose["volumes"]), name
    node = services["node"]
    assert node["depends_on"]["mint"]["condition"] == "service_healthy"
    assert "node-data:/data" in node["volumes"]
    assert "/health" in " ".join(node["healthcheck"]["test"])
    mounts = [v for v in node["volumes"] if v.startswith("./")]
    assert all((DOCKER / v.split(":")[0]).is_file() for v in mounts)
    assert any(v.endswith(":/etc/nutgate/nutgate.toml:ro") for v in mounts)


def test_compose_mint_is_the_one_the_node_trusts(compose: dict[str, Any]) -> None:
    port = compose["services"]["mint"]["ports"][0].rsplit(":", 1)[1]
    mints = tomllib.loads((DOCKER / "nutgate.toml").read_text())["cashu"]["mints"]
    assert mints == [f"http://mint:{port}"]


def test_compose_faucet_mints_tokens_the_node_accepts(compose: dict[str, Any]) -> None:
    faucet = compose["services"]["faucet"]
    assert faucet["profiles"] == ["tools"]  # not started by `up`
    assert faucet["build"] == compose["services"]["node"]["build"]  # the node's own image
    assert faucet["depends_on"]["mint"]["condition"] == "service_healthy"
    assert faucet["entrypoint"] == ["python", "-m", "node.dev.faucet"]
    mints = tomllib.loads((DOCKER / "nutgate.toml").read_text())["cashu"]["mints"]
    assert faucet["command"][0] == mints[0]  # the URL the node trusts, not 127.0.0.1's


async def test_the_faucet_prints_a_token_of_the_mint_it_is_given(
    mint: Any, ref_wallet: Any
) -> None:
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "node.dev.faucet", mint.url, "7"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token.startswith("cashuB")
    assert await ref_wallet.receive(token) == 7
    refused = subprocess.run(
        [sys.executable, "-m", "node.dev.faucet", "http://127.0.0.1:9", "7"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "faucet: no token from" in refused.stderr
    assert "Traceback" not in refused.stderr


def compose_tool() -> list[str] | None:
    """Compose v2 (`docker compose`) or v1 (`docker-compose`), whichever this machine has."""
    if shutil.which("docker"):
        v2 = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if v2.returncode == 0:
            return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def test_compose_config_validates_with_docker_compose() -> None:
    """Compose itself reads the file (`make compose` installs it; no engine is needed)."""
    tool = compose_tool()
    if tool is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    run = [*tool, "-f", str(DOCKER / "compose.yaml"), "--profile", "tools"]
    done = subprocess.run([*run, "config", "-q"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    listed = subprocess.run([*run, "config", "--services"], capture_output=True, text=True)
    assert set(listed.stdout.split()) == {"mint", "node", "faucet"}, listed.stderr
