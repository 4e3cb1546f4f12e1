"""What every ``ib-nice-funcs`` command shares: handlers, the client, errors, tables.

Below the command modules (:mod:`.data`, :mod:`.trading`, and the journal's
and dashboard's ``add_commands``); it imports none of them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["HANDLERS", "CLIError", "Handler", "client_for", "command", "fmt_price", "print_table"]

Handler = Callable[[argparse.Namespace], int]
#: Command name -> its handler, filled by each command module's ``add_commands``.
HANDLERS: dict[str, Handler] = {}


class CLIError(Exception):
    """An error to show as one line, exit code 1."""


def command(name: str) -> Callable[[Handler], Handler]:
    """Register ``fn(args) -> int`` as the handler of command ``name``."""

    def register(fn: Handler) -> Handler:
        HANDLERS[name] = fn
        return fn

    return register


def client_for(args: argparse.Namespace) -> Any:
    """A :class:`~ib_nice_funcs.client.Client` from the settings and the command's options."""
    from ..client import Client
    from ..config import get_settings

    overrides: dict[str, Any] = {}
    for key in ("host", "port", "client_id", "timeout"):
        value = getattr(args, key, None)
        if value is not None:
            overrides[key] = value
    if getattr(args, "source", None) and args.source != "auto":
        overrides["sources"] = args.source
    return Client(get_settings(), **overrides)


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    """Print ``rows`` under ``headers``, columns aligned (first left, the rest right)."""
    text = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[k]) for r in text)) if text else len(h)
              for k, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in text:
        cells = enumerate(zip(row, widths, strict=False))
        print("  ".join(c.rjust(w) if k else c.ljust(w) for k, (c, w) in cells))


def fmt_price(value: float | None) -> str:
    """A price for a table: 5 decimals under 10, else 2; ``-`` when there is none."""
    if value is None:
        return "-"
    return f"{value:,.5f}" if abs(value) < 10 else f"{value:,.2f}"
