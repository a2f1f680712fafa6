"""The `orderbridge` command line: one entry point, one module per command (daemon/commands/).

Each command module defines `HELP`, `add_arguments(parser)` and `run(args, config) -> int`, and
imports what it needs inside `run`, so `orderbridge --help` starts fast.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from connector.config import load_config
from connector.errors import OrderbridgeError

# An explicit registry: command name → module under daemon/commands.
COMMANDS = {
    "up": "up",
    "backend": "backend",
    "receiver": "receiver",
    "daemon": "daemon",
    "import-csv": "import_csv",
    "enqueue": "enqueue",
    "backfill": "backfill",
    "push": "push",
    "outbox": "outbox",
    "check": "check",
    "workflows": "workflows",
}


def _load(module: str):
    try:
        return importlib.import_module(f"daemon.commands.{module}")
    except ModuleNotFoundError as e:
        if e.name == f"daemon.commands.{module}":
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orderbridge", description="Feed shop orders into marketing automation.")
    parser.add_argument("--config", metavar="PATH", help="config file (default: ./orderbridge.toml if present, else built-in defaults)")
    parser.add_argument("--verbose", "-v", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module in COMMANDS.items():
        mod = _load(module)
        if mod is None:
            continue
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
        return int(args._run(args, config) or 0)
    except OrderbridgeError as e:
        print(f"orderbridge {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:      # a database that cannot be opened or used: one line, not a traceback
        from sqlalchemy.exc import DatabaseError, InterfaceError, OperationalError
        if not (isinstance(e, (OperationalError, InterfaceError)) or type(e) is DatabaseError):
            raise           # anything else is a bug: its traceback is what a report needs
        print(f"orderbridge {args.command}: the database cannot be used: {_reason(e)} "
              "(check [connector] database / [backend] database, and that the server is running)", file=sys.stderr)
        return 2


def _reason(e) -> str:
    """The driver's own first line: no SQL, no parameters, no password."""
    from connector.database import unavailable_reason
    return unavailable_reason(e)


if __name__ == "__main__":
    sys.exit(main())
