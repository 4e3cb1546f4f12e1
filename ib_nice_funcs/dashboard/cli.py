"""``ib-nice-funcs dashboard [--port N]``: serve the page until Ctrl-C."""

from __future__ import annotations

import argparse
import secrets
from collections.abc import Callable
from typing import Any

__all__ = ["add_commands"]

Handler = Callable[[argparse.Namespace], int]

#: The dashboard's own API client id is the agents' plus this, so it never takes theirs.
CLIENT_ID_OFFSET = 100


def _dashboard(args: argparse.Namespace) -> int:
    from ..client import Client
    from ..config import get_settings
    from ..errors import ConfigurationError
    from ..trade_journal.store import resolve_path

    try:
        from .app import create_app
        from .server import DashboardServer, PortInUseError
    except ImportError as exc:
        raise ConfigurationError(f"the dashboard needs its extra ({exc.name} is missing): "
                          "pip install 'ib_nice_funcs[dashboard]'") from None
    settings = get_settings()
    # The dashboard's own orders (the emergency stop's) are journaled as agent "dashboard".
    overrides: dict[str, Any] = {"client_id": settings.client_id + CLIENT_ID_OFFSET,
                                 "agent": "dashboard"}
    for key in ("host", "port", "client_id", "timeout"):
        value = getattr(args, key, None)
        if value is not None:
            overrides[key] = value
    token = secrets.token_urlsafe(18)
    with Client(settings, **overrides) as client:
        journal = resolve_path(args.journal if args.journal else settings.journal)
        app = create_app(client, token, journal)
        try:
            server = DashboardServer(app, args.bind, args.http_port)
        except PortInUseError as exc:
            raise ConfigurationError(str(exc.strerror)) from None
        print(f"dashboard for {client.settings.host}:{client.settings.port} (client id "
              f"{client.settings.client_id}); journal {journal or 'off'}")
        print(f"open {server.url(token)}   (Ctrl-C stops it)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


def add_commands(sub: Any, common: argparse.ArgumentParser,
                 command: Callable[[str], Callable[[Handler], Handler]]) -> None:
    """Add ``dashboard`` to the ``ib-nice-funcs`` parser (``--port`` is the web page's)."""
    gateway = argparse.ArgumentParser(add_help=False)
    gateway.add_argument("--host", help="gateway host (IB_HOST)")
    gateway.add_argument("--gateway-port", type=int, dest="port",
                         help="gateway port (IB_PORT): 4002 Gateway paper, 7497 TWS paper")
    gateway.add_argument("--client-id", type=int, dest="client_id",
                         help=f"API client id (default: IB_CLIENT_ID + {CLIENT_ID_OFFSET})")
    gateway.add_argument("--timeout", type=float, help="seconds per call")
    p = sub.add_parser("dashboard", parents=[gateway],
                       help="a local web page: account, positions, orders, fills, risk, "
                            "emergency stop")
    p.add_argument("--port", type=int, default=8050, dest="http_port",
                   help="the page's port (default 8050; 0 = any free port)")
    p.add_argument("--bind", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--journal", metavar="FILE", help="the journal file (default: the setting)")
    command("dashboard")(_dashboard)
