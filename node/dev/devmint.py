"""The dev stack's Cashu mint: Nutshell on the FakeWallet backend, and a faucet minting from it.

Nutshell lives in `.venv-mint` (its pins clash with the OpenAI SDK's, see design.md), next to the
project's `.venv`; `make dev` (or `make run`) makes both. FakeWallet marks every mint quote paid
at once, so `faucet_token` turns "I want 1000 sat" into a fresh token with two NUT-04 calls and
no Lightning. The faucet uses the project's own wallet primitives (blinding, DLEQ check, token
encoding).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from node.dev.procs import die_with_parent
from wallet import crypto
from wallet.keysets import Keyset
from wallet.mint_client import BlindSignature, MintClient
from wallet.outputs import build_outputs, make_proofs, split_amount
from wallet.tokens import Token, serialize_v4

PROJECT_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0


class DevStackError(Exception):
    """The dev stack cannot start; the message says what to do."""


def mint_venv_candidates() -> list[Path]:
    """Where `.venv-mint` may be: beside the running venv, the source tree, the cwd."""
    return [Path(sys.prefix).parent, PROJECT_ROOT, Path.cwd()]


def find_mint_python(places: list[Path] | None = None) -> Path:
    """`.venv-mint/bin/python` in the first of `places` that has one."""
    candidates = [p / ".venv-mint" for p in (places or mint_venv_candidates())]
    for venv in candidates:
        python = venv / "bin" / "python"
        if python.exists():
            return python
    raise DevStackError(
        "the dev mint (Nutshell) is not installed: no .venv-mint in "
        f"{', '.join(str(c.parent) for c in candidates)}. "
        "Run `make dev` (or `make run`) in the project directory first."
    )


class DevMint:
    """One Nutshell mint process on 127.0.0.1:`port`, its data and log in `data_dir`."""

    def __init__(self, python: Path, port: int, data_dir: Path) -> None:
        self.port, self.data_dir = port, data_dir
        self.url = f"http://127.0.0.1:{port}"
        self.log = data_dir / "mint.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(data_dir),
            "CASHU_DIR": str(data_dir / "cashu"),
            "MINT_BACKEND_BOLT11_SAT": "FakeWallet",
            "MINT_PRIVATE_KEY": "nutgate-dev-mint",  # fixed: same keysets across restarts
            "MINT_LISTEN_HOST": "127.0.0.1",
            "MINT_LISTEN_PORT": str(port),
            "MINT_DATABASE": str(data_dir / "db"),
            "MINT_AUTH_DATABASE": str(data_dir / "authdb"),
            "MINT_INPUT_FEE_PPK": "0",
            "MINT_RATE_LIMIT": "false",
            "FAKEWALLET_DELAY_INCOMING_PAYMENT": "0",
            "DEBUG": "false",
            "LOG_LEVEL": "INFO",
        }
        with open(self.log, "ab") as log:
            # cwd = data dir: Nutshell reads ./.env on import. Own session: a terminal's Ctrl-C
            # reaches `nutgate run` alone, which then stops the mint in order.
            self.proc = subprocess.Popen(
                [str(python), "-m", "cashu.mint"],
                cwd=data_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    async def wait_ready(self, session: aiohttp.ClientSession, progress: Progress) -> None:
        """Poll GET /v1/keysets until it answers 200 (Nutshell takes 5-10 s to start)."""
        started = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                raise DevStackError(
                    f"the dev mint exited ({self.proc.returncode}); its log "
                    f"({self.log}) ends with:\n{self.tail()}"
                )
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                timeout = aiohttp.ClientTimeout(total=2)
                async with session.get(self.url + "/v1/keysets", timeout=timeout) as resp:
                    if resp.status == 200:
                        progress.done(time.monotonic() - started)
                        return
            elapsed = time.monotonic() - started
            if elapsed > START_TIMEOUT_S:
                raise DevStackError(
                    f"the dev mint did not answer within {START_TIMEOUT_S:.0f} s; its log "
                    f"({self.log}) ends with:\n{self.tail()}"
                )
            progress.tick(elapsed)
            await asyncio.sleep(0.25)

    def stop(self) -> None:
        """SIGTERM the mint's process group, SIGKILL it if it lingers, and reap it."""
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class Progress:
    """'starting the dev mint… 3 s', rewritten in place on a terminal, printed once elsewhere."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.tty = sys.stdout.isatty()
        self.shown = -1

    def tick(self, elapsed: float) -> None:
        second = int(elapsed)
        if self.shown == -1 or (self.tty and second != self.shown):
            end = "" if self.tty else "\n"
            print(f"\r{self.label}… {second} s", end=end, flush=True)
            self.shown = second

    def done(self, elapsed: float) -> None:
        prefix = "\r" if self.tty else ""
        print(f"{prefix}{self.label}… ready in {elapsed:.0f} s   ", flush=True)


async def faucet_token(session: aiohttp.ClientSession, mint_url: str, amount: int) -> str:
    """A fresh cashuB token of `amount` sat: NUT-04 quote (FakeWallet pays it) + mint."""
    client = MintClient(session, mint_url, timeout_s=30.0)
    keyset = await _active_keyset(client)
    quote = await _post(
        session, mint_url + "/v1/mint/quote/bolt11", {"amount": amount, "unit": "sat"}
    )
    outputs = build_outputs(
        crypto.Deriver(secrets.token_bytes(64)), keyset, 0, split_amount(amount, keyset.amounts)
    )
    body = {"quote": quote["quote"], "outputs": [o.message.to_json() for o in outputs]}
    answer = await _post(session, mint_url + "/v1/mint/bolt11", body)
    sigs = [
        BlindSignature(
            int(s["amount"]),
            str(s["id"]),
            str(s["C_"]),
            (s.get("dleq") or {}).get("e"),
            (s.get("dleq") or {}).get("s"),
        )
        for s in answer["signatures"]
    ]
    proofs = [p.proof for p in make_proofs(keyset, outputs, sigs)]
    return serialize_v4(Token(client.url, proofs))


async def _active_keyset(client: MintClient) -> Keyset:
    infos = [k for k in await client.keysets() if k.active and k.unit == "sat"]
    if not infos:
        raise DevStackError(f"the dev mint {client.url} has no active sat keyset")
    info = min(infos, key=lambda k: (k.input_fee_ppk, k.id))
    keys = crypto.parse_keys({str(a): k for a, k in (await client.keys(info.id)).items()})
    return Keyset(info.id, client.url, info.unit, info.active, info.input_fee_ppk, keys)


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> Any:
    timeout = aiohttp.ClientTimeout(total=30)
    async with session.post(url, json=body, timeout=timeout) as resp:
        payload = await resp.json(content_type=None)
        if resp.status != 200:
            raise DevStackError(f"the dev mint refused {url}: {resp.status} {payload}")
        return payload
