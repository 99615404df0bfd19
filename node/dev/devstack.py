"""`nutgate run`: a whole node to try on this machine, with nothing to configure.

Starts, all on 127.0.0.1: a Nutshell dev mint (FakeWallet: quotes are paid without Lightning),
the demo upstream (canned answers, not a real LLM) and the node trusting that mint, selling two
priced demo models at a fixed BTC rate. Then mints a funded test token and prints how to spend it.
Ctrl-C (or SIGTERM) stops the three in order: node, upstream, mint; the mint is a child process
in its own session that also dies with us if we are killed outright (PR_SET_PDEATHSIG).

Data lives in ./data/dev (node) and ./data/devmint (mint) so balances survive a restart;
`--fresh` uses throwaway temp dirs instead. The upstream and the node run in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import shutil
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from node.app import create_app
from node.dev import devdata
from node.dev.demo_upstream import ENDPOINTS as UPSTREAM_ENDPOINTS
from node.dev.demo_upstream import LABEL as UPSTREAM_LABEL
from node.dev.demo_upstream import DemoUpstream
from node.dev.devmint import DevMint, DevStackError, Progress, faucet_token, find_mint_python
from node.http.server import NodeRunner
from node.http.web import server_options
from node.settings import ConfigError, Settings, load_settings

HELP = "start a dev stack: local mint, demo upstream and node, with a funded test token"
BTC_USD = 100_000.0


def _demo_model(model_id: str, input_usd: float, output_usd: float) -> dict[str, Any]:
    return {
        "id": model_id,
        "upstream": "demo",
        "input_usd_per_mtok": input_usd,
        "output_usd_per_mtok": output_usd,
        "max_output_tokens": 1024,
    }


DEMO_MODELS = [_demo_model("demo-small", 0.15, 0.60), _demo_model("demo-large", 3.0, 15.0)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8000, help="node port (default 8000)")
    parser.add_argument("--mint-port", type=int, default=3338, help="dev mint port (default 3338)")
    parser.add_argument(
        "--fresh", action="store_true", help="throwaway data in temp dirs instead of ./data/dev"
    )
    parser.add_argument(
        "--amount", type=int, default=1000, help="sat in the printed test token (default 1000)"
    )


def cmd_run(args: argparse.Namespace) -> None:
    if args.amount < 1:
        sys.exit("nutgate run: --amount must be at least 1 sat")
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    logging.getLogger("nutgate").setLevel(logging.INFO)
    sys.exit(asyncio.run(_supervise(args)))


@dataclass
class Dirs:
    node: Path
    mint: Path
    temp: Path | None  # removed at exit (--fresh)


def _dirs(fresh: bool) -> Dirs:
    if fresh:
        temp = Path(tempfile.mkdtemp(prefix="nutgate-dev-"))
        return Dirs(temp / "node", temp / "mint", temp)
    return Dirs(devdata.NODE_DIR.absolute(), Path("data/devmint").absolute(), None)


def _check_port_free(port: int, flag: str) -> None:
    if port == 0:
        return
    with socket.socket() as sock:
        # as servers do: a port whose last connections sit in TIME_WAIT is free to listen on
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise DevStackError(f"port {port} is in use; choose another with {flag}") from None


def dev_config(port: int, data_dir: Path, mint_url: str, upstream_url: str) -> dict[str, Any]:
    return {
        "node": {
            "name": "nutgate dev node",
            "host": "127.0.0.1",
            "port": port,
            "data_dir": str(data_dir),
        },
        "cashu": {"mints": [mint_url]},
        "pricing": {"btc_usd": BTC_USD},
        "upstreams": [
            {"name": "demo", "base_url": upstream_url + "/v1", "endpoints": UPSTREAM_ENDPOINTS}
        ],
        "models": DEMO_MODELS,
    }


def dev_settings(config: dict[str, Any]) -> Settings:
    try:
        return load_settings(None, **config)
    except ConfigError as exc:  # only NUTGATE_* variables from outside can cause this
        raise DevStackError(str(exc)) from exc


async def _supervise(args: argparse.Namespace) -> int:
    """Run the stack as a task that SIGINT/SIGTERM cancel; its cleanups stop everything."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(_stack(args))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        print("\nnutgate run: stopped (node, demo upstream and dev mint)", flush=True)
        return 0
    except DevStackError as exc:
        print(f"nutgate run: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


async def _stack(args: argparse.Namespace) -> None:
    mint_python = find_mint_python()
    _check_port_free(args.mint_port, "--mint-port")
    _check_port_free(args.port, "--port")
    dirs = _dirs(args.fresh)
    mint_url = f"http://127.0.0.1:{args.mint_port}"
    with contextlib.ExitStack() as sync_cleanups:
        if dirs.temp is not None:
            sync_cleanups.callback(shutil.rmtree, dirs.temp, ignore_errors=True)
        password = devdata.prepare(dirs.node, mint_url, check_mint=dirs.temp is None)
        mint = DevMint(mint_python, args.mint_port, dirs.mint)
        sync_cleanups.callback(mint.stop)  # registered first: runs last, after the node is down
        async with contextlib.AsyncExitStack() as cleanups:
            session = await cleanups.enter_async_context(aiohttp.ClientSession())
            await mint.wait_ready(session, Progress("starting the dev mint"))
            demo = DemoUpstream([str(m["id"]) for m in DEMO_MODELS])
            upstream_url = await _serve(cleanups, demo.app, 0)
            config = dev_config(args.port, dirs.node, mint_url, upstream_url)
            settings = dev_settings(config)
            config_file = devdata.write_config(dirs.node, config)
            devdata.set_admin_password(settings, password)
            node = create_app(settings)
            node_url = await _serve(cleanups, node, args.port, **server_options(settings))
            token = await faucet_token(session, mint_url, args.amount)
            where = Where(node_url, upstream_url, config_file, password)
            print(banner(mint, where, token, args.amount, dirs), flush=True)
            await asyncio.Event().wait()  # until a signal cancels us


async def _serve(
    cleanups: contextlib.AsyncExitStack, app: web.Application, port: int, **options: Any
) -> str:
    options.setdefault("access_log", None)
    runner = NodeRunner(app, shutdown_timeout=2.0, **options)
    await runner.setup()
    cleanups.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, "127.0.0.1", port)
    try:
        await site.start()
    except OSError as exc:
        raise DevStackError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from exc
    host, bound = runner.addresses[0][:2]
    return f"http://{host}:{bound}"


@dataclass
class Where:
    node_url: str
    upstream_url: str
    config: Path
    admin_password: str


def shown(path: Path) -> str:
    """`path` as a user types it here: relative to the current directory when under it."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path.absolute())


def operator_commands(config: Path) -> list[str]:
    """The CLI commands that act on this node's data, ready to paste."""
    nutgate = Path(sys.executable).with_name("nutgate")
    exe = shown(nutgate) if nutgate.exists() else "nutgate"
    exe = exe if "/" in exe else "./" + exe
    with_config = f"--config {shown(config)}"
    return [
        f"{exe} keys create {with_config} --balance-msat 100000",
        f"{exe} admin reset-password {with_config}",
        f"{exe} audit {with_config}",
    ]


def banner(mint: DevMint, where: Where, token: str, amount: int, dirs: Dirs) -> str:
    model = DEMO_MODELS[0]["id"]
    node_url = where.node_url
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hello!"}]})
    data = "temp dirs, removed at exit (--fresh)" if dirs.temp else f"{dirs.node}, {dirs.mint}"
    models = ", ".join(str(m["id"]) for m in DEMO_MODELS)
    commands = "\n".join("  " + line for line in operator_commands(where.config))
    return f"""
nutgate dev stack — for trying things out: the mint's ecash is play money.
  node           {node_url}
  admin page     {node_url}/admin  (password: {where.admin_password})
  dev mint       {mint.url}  (Nutshell, FakeWallet; pid {mint.pid}; log {mint.log})
  demo upstream  {where.upstream_url}/v1  ({UPSTREAM_LABEL})
  models         {models}  (at ${BTC_USD:,.0f}/BTC)
  data           {data}
  config         {shown(where.config)}

test token ({amount} sat from the dev mint):
{token}

curl:
  curl {node_url}/v1/chat/completions \\
    -H "Authorization: Bearer {token}" \\
    -H "Content-Type: application/json" \\
    -d '{body}'

OpenAI SDK (Python):
  from openai import OpenAI
  client = OpenAI(base_url="{node_url}/v1", api_key="{token}")
  reply = client.chat.completions.create(
      model="{model}", messages=[{{"role": "user", "content": "Hello!"}}]
  )
  print(reply.choices[0].message.content)

Balance: curl {node_url}/v1/wallet/balance -H "Authorization: Bearer <the token>"
Operator commands on this node's data (run them in another terminal, here):
{commands}
Ctrl-C stops the node, the demo upstream and the dev mint.
"""
