"""The `nutgate` command: serve, run (the dev stack), keys, audit, config check."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from pathlib import Path

from node.app import create_app
from node.dev import devdata, devstack
from node.http import server
from node.http.web import server_options
from node.logs import configure_logging, secrets_of
from node.money.keys import PERIODS, Keys, Rules
from node.money.ledger import Ledger, hash_key
from node.parts import open_database
from node.settings import ConfigError, Settings, load_settings
from wallet import Checkpoint


def _settings(args: argparse.Namespace) -> Settings:
    try:
        return load_settings(Path(args.config) if args.config else None)
    except ConfigError as exc:
        sys.exit(f"nutgate: {exc}")


DEV_CONFIG = devdata.NODE_DIR / devdata.CONFIG  # written by `nutgate run` (`make run`)


def used_by_a_node(settings: Settings) -> bool:
    """Whether a node has run on this data: its SQLite database and the wallet seed it made.
    (PostgreSQL: the database is the node's by configuration.)"""
    if settings.store.url:
        return True
    data_dir = settings.node.data_dir
    return settings.database_path.exists() and (data_dir / "wallet.seed").exists()


def _node_settings(args: argparse.Namespace) -> Settings:
    """The settings of a node's data for a command that reads or changes it. Without --config
    here the dev stack's config is used when ./data is no node's; a database that no node has
    used is refused (the command would act on a stray database the node never reads)."""
    settings = _settings(args)
    if args.config is None and DEV_CONFIG.exists() and not used_by_a_node(settings):
        print(f"nutgate: no --config given: using the dev stack's {DEV_CONFIG}", file=sys.stderr)
        args.config = str(DEV_CONFIG)
        settings = _settings(args)
    if not used_by_a_node(settings):
        where = f"--config {args.config}" if args.config else "no --config (defaults)"
        sys.exit(
            f"nutgate: no node has run on {settings.node.data_dir} ({where}): refusing to act on "
            "a database no node uses. Pass the node's own configuration with --config FILE "
            f"(the dev stack, `make run`, writes {DEV_CONFIG} and prints the commands)."
        )
    return settings


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (Linux, macOS): the same asyncio, less CPU per request."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def cmd_serve(args: argparse.Namespace) -> None:
    serve(_settings(args))


def serve(settings: Settings, checkpoint: Checkpoint | None = None) -> None:
    """Run the node until it is stopped. `checkpoint`: the wallet's, for the crash tests."""
    configure_logging(settings.log.level, settings.log.format, secrets_of(settings))
    app = create_app(settings, checkpoint=checkpoint)
    print(f"nutgate listening on http://{settings.node.host}:{settings.node.port}", flush=True)
    server.run(
        app, settings.node.host, settings.node.port, new_event_loop(), **server_options(settings)
    )


def cmd_keys_create(args: argparse.Namespace) -> None:
    settings = _node_settings(args)
    if args.balance_msat < 0:
        sys.exit("nutgate: --balance-msat must not be negative")
    limit, period = args.spend_limit_msat, args.limit_period
    if limit is not None and limit < 0:
        sys.exit("nutgate: --spend-limit-msat must not be negative")
    key = "sk-" + secrets.token_urlsafe(32)
    db = open_database(settings)
    ledger = Ledger(db)
    account_id = ledger.grant(hash_key(key), args.balance_msat)
    models = tuple(m.strip() for m in args.models.split(",") if m.strip()) if args.models else None
    if limit is not None or args.expires_at is not None or models is not None:
        rules = Rules("", limit, period, args.expires_at, models)
        Keys(db, ledger).set_rules(account_id, rules)
    print(key)


AUDIT_LINES = {
    "balance": "account {0}: balance {1} msat, entries {2} msat",
    "reserved": "account {0}: reserved {1} msat, reservations {2} msat",
    "credit": "account {0}: balance {1} msat, operator credit {2} msat (outside 0..balance)",
}


def cmd_audit(args: argparse.Namespace) -> None:
    settings = _node_settings(args)
    ledger = Ledger(open_database(settings))
    mismatches, seen = ledger.audit(), ledger.balances()
    where = "PostgreSQL" if settings.store.url else settings.database_path
    print(
        f"{where}: {seen.accounts} accounts, {seen.owed_msat} msat owed as ecash,"
        f" {seen.credit_msat} msat operator credit, {seen.reserved_msat} msat reserved"
    )
    for m in mismatches:
        print(AUDIT_LINES[m.check].format(m.account_id, m.balance_msat, m.entries_msat))
    print("audit clean" if not mismatches else f"{len(mismatches)} mismatch(es)")
    sys.exit(1 if mismatches else 0)


def cmd_admin_reset_password(args: argparse.Namespace) -> None:
    from node.admin.auth import AdminAuth

    password = AdminAuth(open_database(_node_settings(args))).reset_password()
    print(f"new admin password (shown once; sessions ended): {password}")


def cmd_config_check(args: argparse.Namespace) -> None:
    _settings(args)
    print("configuration ok")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nutgate", description="LLM access paid with Cashu")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", "-c", help="TOML configuration file")
        return p

    command("serve", "run the node").set_defaults(func=cmd_serve)
    run = sub.add_parser("run", help=devstack.HELP, description=devstack.HELP)
    devstack.add_arguments(run)
    run.set_defaults(func=devstack.cmd_run)
    command(
        "audit", "recompute every balance from the ledger's entries; check operator credit"
    ).set_defaults(func=cmd_audit)
    keys = sub.add_parser("keys", help="operator-funded API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser(
        "create",
        help="create an sk- key funded by the operator: credit that pays for requests and is"
        " never paid out as ecash",
    )
    create.add_argument("--config", "-c", help="TOML configuration file")
    create.add_argument("--balance-msat", type=int, required=True, help="starting balance")
    create.add_argument("--spend-limit-msat", type=int, help="the most it may spend per period")
    create.add_argument("--limit-period", choices=sorted(PERIODS), help="default: the key's life")
    create.add_argument("--expires-at", type=int, help="unix time after which it stops spending")
    create.add_argument("--models", help="the only models it may use, comma-separated")
    create.set_defaults(func=cmd_keys_create)
    admin_cmd = sub.add_parser("admin", help="admin page tools").add_subparsers(
        dest="admin_command", required=True
    )
    reset = admin_cmd.add_parser(
        "reset-password", help="set a new random admin password and end every session"
    )
    reset.add_argument("--config", "-c", help="TOML configuration file")
    reset.set_defaults(func=cmd_admin_reset_password)
    config = sub.add_parser("config", help="configuration tools").add_subparsers(
        dest="config_command", required=True
    )
    check = config.add_parser("check", help="validate a configuration file")
    check.add_argument("config", help="TOML configuration file")
    check.set_defaults(func=cmd_config_check)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
