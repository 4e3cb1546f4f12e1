"""Trading commands of ``ib-nice-funcs``: positions, orders, account, buy, sell, cancel-all, kill.

Every command that changes something asks for confirmation on stdin unless
``--yes`` is given; without a terminal (a pipe, cron, EOF) the answer is no,
so nothing is sent by accident. Errors come out as one line (``CLIError`` or
the package's own errors, printed by :func:`ib_nice_funcs.cli.main`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["add_commands", "confirm"]

Handler = Callable[[argparse.Namespace], int]


def _base() -> Any:
    from .. import cli

    return cli


def confirm(question: str, args: argparse.Namespace) -> bool:
    """Ask ``question`` on stdin; True only for an explicit yes (or ``--yes``).

    No terminal on stdin, EOF or anything but ``y``/``yes`` means no.
    """
    if getattr(args, "yes", False):
        return True
    stdin = sys.stdin
    if stdin is None or not stdin.isatty():
        return False
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _require(question: str, args: argparse.Namespace) -> None:
    if not confirm(question, args):
        raise _base().CLIError("not confirmed; nothing was sent (pass --yes to skip the question)")


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _qty(value: float) -> str:
    return f"{value:,.8f}".rstrip("0").rstrip(".") if value % 1 else f"{value:,.0f}"


def _order_line(verb: str, result: dict[str, Any]) -> str:
    avg = result.get("avg_price")
    price = f" at {_base()._fmt_price(avg)}" if avg else ""
    filled = _qty(result.get("filled_qty") or 0.0)
    asked = _qty(result.get("quantity") or 0.0)
    return (f"{verb} {filled} of {asked} {result.get('symbol')}{price}: {result.get('status')} "
            f"(order {result.get('order_id')}, "
            f"client order id {result.get('client_order_id')})")


# -- handlers --------------------------------------------------------------------------


def _positions(args: argparse.Namespace) -> int:
    base = _base()
    with base._client(args) as client:
        rows = client.trading.get_all_positions()
    if not rows:
        print("no positions")
        return 0
    base._print_table(
        [(p["symbol"], _qty(p["quantity"]), base._fmt_price(p["avg_cost"]),
          base._fmt_price(p["current_price"]), _money(p["market_value"]),
          _money(p["unrealized_pnl"]), f"{p['unrealized_pnl_pct']:+.2f}%") for p in rows],
        ("symbol", "quantity", "avg cost", "price", "value", "unrealized", "pnl %"),
    )
    return 0


def _orders(args: argparse.Namespace) -> int:
    base = _base()
    with base._client(args) as client:
        rows = client.trading.get_open_orders()
    if not rows:
        print("no open orders")
        return 0
    base._print_table(
        [(o["symbol"], o["side"], _qty(o["quantity"]), o["order_type"],
          base._fmt_price(o["limit_price"] or o["stop_price"]), o["tif"], o["status"],
          _qty(o["filled_qty"]), o["order_id"], o["client_id"], o["client_order_id"] or "-")
         for o in rows],
        ("symbol", "side", "qty", "type", "price", "tif", "status", "filled", "order id",
         "client", "client order id"),
    )
    return 0


def _account(args: argparse.Namespace) -> int:
    base = _base()
    with base._client(args) as client:
        trader = client.trading
        net = trader.get_account_value()
        available = trader.get_balance()
        account = client.gateway.account or ", ".join(client.gateway.managed_accounts) or "-"
    kind = "paper" if str(account).startswith("D") else "LIVE"
    base._print_table(
        [("account", f"{account} ({kind})"), ("net liquidation", _money(net)),
         ("available funds", _money(available))],
        ("item", "value"),
    )
    return 0


def _buy(args: argparse.Namespace) -> int:
    from .validation import validate_usd_amount

    usd = validate_usd_amount(args.usd, "--usd")
    kind = f"limit {args.limit:g}" if args.limit is not None else "market"
    _require(f"buy ${usd:,.2f} of {args.symbol} at {kind}?", args)
    with _base()._client(args) as client:
        if args.limit is not None:
            result = client.trading.limit_buy(args.symbol, usd, args.limit)
        else:
            result = client.trading.market_buy(args.symbol, usd)
    print(_order_line("bought", result))
    return 0


def _sell(args: argparse.Namespace) -> int:
    from .validation import validate_percentage

    pct = validate_percentage(args.pct, "--pct")
    kind = f"limit {args.limit:g}" if args.limit is not None else "market"
    _require(f"sell {pct:g}% of the {args.symbol} position at {kind}?", args)
    with _base()._client(args) as client:
        if args.limit is not None:
            result = client.trading.limit_sell(args.symbol, pct, args.limit)
        else:
            result = client.trading.market_sell(args.symbol, pct)
    print(_order_line("sold", result))
    return 0


def _cancel_all(args: argparse.Namespace) -> int:
    _require("cancel EVERY open order on the account (all clients)?", args)
    with _base()._client(args) as client:
        result = client.trading.cancel_all()
    print(f"cancelled {result['cancelled']} order(s)")
    if not result["success"]:
        raise _base().CLIError(result["error"])
    return 0


def _kill(args: argparse.Namespace) -> int:
    base = _base()
    if bool(args.symbol) == bool(args.all):
        raise base.CLIError("give a SYMBOL to flatten, or --all for the emergency stop (not both)")
    if args.all:
        _require("EMERGENCY STOP: cancel every open order and flatten every position?", args)
        with base._client(args) as client:
            result = client.trading.emergency_stop()
        print(f"cancelled {result['cancelled_orders']} order(s); closing orders:")
        for closed in result["closed"]:
            print("  " + _order_line("closed", closed))
        print("trading is halted for every agent process of the account; "
              "'ib-nice-funcs resume' lifts it")
        if not result["success"]:
            raise base.CLIError(result["error"])
        print("flat: no open orders, no positions")
        return 0
    _require(f"cancel {args.symbol}'s open orders and flatten its position at market?", args)
    with base._client(args) as client:
        result = client.trading.kill_switch(args.symbol)
    if result["status"] == "NoPosition":
        print(f"{result['symbol']}: no position; cancelled {result['cancelled_orders']} order(s)")
    else:
        print(_order_line("closed", result) + f"; cancelled {result['cancelled_orders']} order(s)")
    if result.get("uncancelled"):
        raise base.CLIError(f"{len(result['uncancelled'])} order(s) of other clients remain; "
                            "use 'ib-nice-funcs cancel-all'")
    return 0


def _resume(args: argparse.Namespace) -> int:
    with _base()._client(args) as client:
        result = client.trading.resume_trading()
    if result["was_halted"]:
        print(f"account {result['account']}: trading resumed (the halt by process "
              f"{result['halted_by']} is lifted for every agent process)")
    else:
        print(f"account {result['account']}: was not halted")
    return 0


# -- parser ----------------------------------------------------------------------------


def add_commands(
    sub: Any,
    common: argparse.ArgumentParser,
    command: Callable[[str], Callable[[Handler], Handler]],
) -> None:
    """Add the trading subcommands to the ``ib-nice-funcs`` parser.

    Args:
        sub: The argparse subparsers object.
        common: Parent parser with --host/--port/--client-id/--timeout/--source.
        command: Decorator registering a handler ``fn(args) -> int`` by name.
    """
    yes = argparse.ArgumentParser(add_help=False)
    yes.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")

    sub.add_parser("positions", parents=[common], help="positions of the account")
    sub.add_parser("orders", parents=[common], help="open orders of the account (all clients)")
    sub.add_parser("account", parents=[common], help="net liquidation and available funds")

    p = sub.add_parser("buy", parents=[common, yes], help="buy USD worth of a symbol")
    p.add_argument("symbol", help="AAPL, EURUSD, BTC-USD...")
    p.add_argument("--usd", type=float, required=True, help="dollars to spend")
    p.add_argument("--limit", type=float, help="limit price (default: market order)")

    p = sub.add_parser("sell", parents=[common, yes], help="sell a percentage of a position")
    p.add_argument("symbol", help="a symbol the account holds")
    p.add_argument("--pct", type=float, default=100.0, help="percent of the position (default 100)")
    p.add_argument("--limit", type=float, help="limit price (default: market order)")

    sub.add_parser("cancel-all", parents=[common, yes],
                   help="cancel every open order (all clients)")

    p = sub.add_parser("kill", parents=[common, yes],
                       help="flatten SYMBOL (cancel its orders, close at market) or --all")
    p.add_argument("symbol", nargs="?", help="the symbol to flatten")
    p.add_argument("--all", action="store_true",
                   help="emergency stop: cancel everything, flatten everything")

    sub.add_parser("resume", parents=[common],
                   help="lift the halt 'kill --all' / emergency_stop() latched (every process)")

    for name, handler in (("positions", _positions), ("orders", _orders), ("account", _account),
                          ("buy", _buy), ("sell", _sell), ("cancel-all", _cancel_all),
                          ("kill", _kill), ("resume", _resume)):
        command(name)(handler)
