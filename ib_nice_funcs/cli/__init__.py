"""ib-nice-funcs: the command line.

The CLI prints (the library only logs). Operational errors come out as one
line on stderr and exit code 1, never a traceback.

The commands live by concern: :mod:`.data` (price, ohlcv, sim, demo,
doctor, costs), :mod:`.trading` (positions, orders, account, buy, sell,
cancel-all, kill), the journal's and the dashboard's own ``add_commands``;
:mod:`.common` holds what they share. This module assembles the parser and
runs the command.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from .. import __version__
from . import data, trading
from .common import HANDLERS, CLIError, command

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The ``ib-nice-funcs`` parser with every command (each command module adds its own)."""
    parser = argparse.ArgumentParser(
        prog="ib-nice-funcs",
        description="Interactive Brokers behind one-line nice_funcs calls.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--host", help="gateway host (IB_HOST)")
    common.add_argument("--port", type=int,
                        help="gateway port (IB_PORT): 4002 Gateway paper, 7497 TWS paper")
    common.add_argument("--client-id", type=int, dest="client_id",
                        help="API client id (IB_CLIENT_ID)")
    common.add_argument("--timeout", type=float, help="seconds per call (IB_NICE_FUNCS_TIMEOUT)")
    common.add_argument("--source", default="auto",
                        help="data source(s): auto, ib, yfinance or a list")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    data.add_commands(sub, common)
    trading.add_commands(sub, common, command)
    _add_journal_commands(sub, common)
    return parser


def _add_journal_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    from ..dashboard.cli import add_commands as add_dashboard
    from ..trade_journal.cli import add_commands

    add_commands(sub, common, command)
    add_dashboard(sub, common, command)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ib-nice-funcs``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from ..errors import IBNiceFuncsError

    try:
        return HANDLERS[args.command](args)
    except (CLIError, IBNiceFuncsError, ValueError, TypeError) as exc:
        print(f"ib-nice-funcs {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
