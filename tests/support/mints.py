"""Real Cashu mints (Nutshell 0.20.2, FakeWallet backend) and Nutshell's wallet, for the tests.

A pytest plugin, registered in tests/conftest.py (`pytest_plugins = ["tests.support.mints"]`).
Needs `.venv-mint` (made by `make dev`). Session-scoped fixtures:

    mint        MintInfo(url, fee_ppk=0)    a plain mint
    fee_mint    MintInfo(url, fee_ppk=100)  a mint charging input fees (0.1 sat per input, NUT-02)
    ref_wallet  RefWallet                   Nutshell's own wallet, as a local HTTP service

`own_mint(name, **env)` starts a mint of a test's own with other Nutshell settings.

The first test asking for any of them starts every mint at once (about 5-10 s), each in its own
temp dir on a free port, and they live until the session ends (SIGTERM, then SIGKILL; they also
die with pytest thanks to PR_SET_PDEATHSIG). A mint that fails to start fails the test with the
tail of its log.

    async def test_x(mint, ref_wallet):
        token = await ref_wallet.token(mint.url, 100)             # cashuB, 100 sat, fresh
        token_v3 = await ref_wallet.token(mint.url, 5, version=3) # cashuA
        got = await ref_wallet.receive(some_token)                # sat Nutshell kept (net of fees)

`ref_wallet.token_sync` / `receive_sync` do the same without an event loop. Each token is
minted fresh (FakeWallet pays quotes at once, ~0.1-0.2 s each), so it is unspent and unique;
a refused call raises `RefWalletError` with Nutshell's message.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from node.dev.procs import die_with_parent, free_port

ROOT = Path(__file__).resolve().parents[2]
MINT_PYTHON = ROOT / ".venv-mint" / "bin" / "python"
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class MintInfo:
    url: str
    fee_ppk: int
    log: Path


class RefWalletError(Exception):
    pass


class _Process:
    """A child on a free port in its own temp dir, ready once `probe` answers 200."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], port: int, probe: str):
        self.name, self.port, self.probe = name, port, probe
        self.dir = Path(tempfile.mkdtemp(prefix=f"nutgate-{name}-"))
        self.log = self.dir / "log.txt"
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.dir)}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                args,
                cwd=self.dir,  # Nutshell reads ./.env on import: give it an empty cwd
                env={**base, "CASHU_DIR": str(self.dir / "cashu"), **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        self._ready = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._ready:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.name} exited ({self.proc.returncode}):\n{self._tail()}")
            try:
                with urllib.request.urlopen(self.url + self.probe, timeout=2) as resp:
                    self._ready = resp.status == 200
            except (OSError, urllib.error.URLError):
                pass
            if not self._ready:
                if time.monotonic() > deadline:
                    pytest.fail(f"{self.name} not ready after {START_TIMEOUT_S}s:\n{self._tail()}")
                time.sleep(0.2)

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _mint_env(port: int, fee_ppk: int, name: str, data: Path) -> dict[str, str]:
    return {
        "MINT_BACKEND_BOLT11_SAT": "FakeWallet",
        "MINT_PRIVATE_KEY": f"nutgate-test-{name}",
        "MINT_LISTEN_HOST": "127.0.0.1",
        "MINT_LISTEN_PORT": str(port),
        "MINT_DATABASE": str(data / "db"),
        "MINT_AUTH_DATABASE": str(data / "authdb"),
        "MINT_INPUT_FEE_PPK": str(fee_ppk),
        "MINT_RATE_LIMIT": "false",
        "FAKEWALLET_DELAY_INCOMING_PAYMENT": "0",
        "FAKEWALLET_DELAY_OUTGOING_PAYMENT": "0",  # melts pay at once
        "DEBUG": "false",
        "LOG_LEVEL": "INFO",
    }


def _start_mint(name: str, fee_ppk: int, **extra: str) -> _Process:
    if not MINT_PYTHON.exists():
        pytest.fail(f"{MINT_PYTHON} missing: run `make dev`")
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix=f"nutgate-{name}-data-"))
    env = {**_mint_env(port, fee_ppk, name, data), **extra}
    return _Process(name, [str(MINT_PYTHON), "-m", "cashu.mint"], env, port, "/v1/keysets")


@contextlib.contextmanager
def own_mint(name: str, **env: str) -> Iterator[MintInfo]:
    """A mint of the caller's own, with Nutshell settings of its own (e.g. MAX_ORDER="16":
    keys for 1 to 2**15 only), stopped on leaving."""
    proc = _start_mint(name, 0, **env)
    try:
        proc.wait()
        yield MintInfo(proc.url, 0, proc.log)
    finally:
        proc.stop()


class _Farm:
    """Every test process starts at first use, all at once, and stops at session end."""

    def __init__(self) -> None:
        self.procs: dict[str, _Process] = {}

    def start_all(self) -> None:
        if self.procs:
            return
        self.procs["mint"] = _start_mint("mint", 0)
        self.procs["fee_mint"] = _start_mint("fee_mint", 100)
        port = free_port()
        script = str(Path(__file__).with_name("ref_wallet_service.py"))
        self.procs["ref_wallet"] = _Process(
            "ref_wallet",
            [str(MINT_PYTHON), script, "--port", str(port), "--dir", tempfile.mkdtemp()],
            {"TOR": "false"},
            port,
            "/health",
        )

    def get(self, name: str) -> _Process:
        self.start_all()
        proc = self.procs[name]
        proc.wait()
        return proc

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()


class RefWallet:
    """Client of tests/support/ref_wallet_service.py (Nutshell's wallet)."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def _post(self, path: str, body: dict[str, object]) -> dict[str, object]:
        timeout = aiohttp.ClientTimeout(total=60)
        # a session per call: works from any event loop a test may run in
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(self.url + path, json=body) as resp,
        ):
            data: dict[str, object] = await resp.json()
        if "error" in data:
            raise RefWalletError(f"{data.get('type')}: {data['error']}")
        return data

    def _post_sync(self, path: str, body: dict[str, object]) -> dict[str, object]:
        req = urllib.request.Request(
            self.url + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                data: dict[str, object] = json.load(resp)
        except urllib.error.HTTPError as e:
            data = json.load(e)
        if "error" in data:
            raise RefWalletError(f"{data.get('type')}: {data['error']}")
        return data

    async def token(self, mint_url: str, amount: int, version: int = 4) -> str:
        """A fresh token of `amount` sat from `mint_url`, cashuB (4) or cashuA (3)."""
        body = {"mint": mint_url, "amount": amount, "version": version}
        return str((await self._post("/token", body))["token"])

    async def receive(self, token: str) -> int:
        """Redeem `token` into Nutshell's wallet; returns the sat it kept (after fees)."""
        amount = (await self._post("/receive", {"token": token}))["amount"]
        assert isinstance(amount, int), amount
        return amount

    def token_sync(self, mint_url: str, amount: int, version: int = 4) -> str:
        body = {"mint": mint_url, "amount": amount, "version": version}
        return str(self._post_sync("/token", body)["token"])

    def receive_sync(self, token: str) -> int:
        amount = self._post_sync("/receive", {"token": token})["amount"]
        assert isinstance(amount, int), amount
        return amount


@pytest.fixture(scope="session")
def _nutshell_farm() -> Iterator[_Farm]:
    farm = _Farm()
    yield farm
    farm.stop()


@pytest.fixture(scope="session")
def mint(_nutshell_farm: _Farm) -> MintInfo:
    proc = _nutshell_farm.get("mint")
    return MintInfo(proc.url, 0, proc.log)


@pytest.fixture(scope="session")
def fee_mint(_nutshell_farm: _Farm) -> MintInfo:
    proc = _nutshell_farm.get("fee_mint")
    return MintInfo(proc.url, 100, proc.log)


@pytest.fixture(scope="session")
def ref_wallet(_nutshell_farm: _Farm) -> RefWallet:
    return RefWallet(_nutshell_farm.get("ref_wallet").url)
