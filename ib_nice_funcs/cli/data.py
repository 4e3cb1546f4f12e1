"""Data, simulator and set-up commands of ``ib-nice-funcs``.

``price``, ``ohlcv``, ``sim``, ``demo``, ``doctor`` and ``costs``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

from .common import CLIError, client_for, command, fmt_price, print_table

__all__ = ["add_commands"]


# -- data ----------------------------------------------------------------------


def _price(args: argparse.Namespace) -> int:
    """The prices found, then one stderr line per symbol without one (exit code 1)."""
    from ..symbols import parse_symbol

    failed: dict[str, Exception] = {}
    wellformed = []
    for symbol in args.symbols:
        try:
            parse_symbol(symbol)
            wellformed.append(symbol)
        except (ValueError, TypeError) as exc:  # a malformed one must not hide the others
            failed[symbol] = exc
    results: dict[str, Any] = {}
    if wellformed:
        with client_for(args) as client:
            results = client.price_results(wellformed)
    good = [(s, fmt_price(p)) for s, p in results.items() if isinstance(p, float)]
    if good:
        print_table(good, ("symbol", "price"))
    failed.update((s, e) for s, e in results.items() if not isinstance(e, float))
    for error in dict.fromkeys(str(e) for e in failed.values()):
        print(f"ib-nice-funcs price: {error}", file=sys.stderr)
    return 1 if failed else 0


def _show_progress(what: str, done: int, total: int) -> None:
    # Called on the package's loop thread; one short stderr write, never blocks long.
    end = "\n" if done == total else ""
    print(f"\r{what}: {done}/{total} requests", end=end, file=sys.stderr, flush=True)


def _ohlcv(args: argparse.Namespace) -> int:
    if args.plot and not args.plot.lower().endswith((".png", ".html")):
        raise CLIError(f"--plot {args.plot}: use a .png or .html file name")
    with client_for(args) as client:
        if "ib" in client.source_order():
            client.source("ib").progress_listeners.append(_show_progress)
        frame = client.ohlcv(args.symbol, args.timeframe, args.days)
    if args.plot:
        _plot(frame, args)
    if args.csv:
        frame.to_csv(args.csv, index=False)
        print(f"wrote {len(frame)} bars of {args.symbol} ({args.timeframe}) to {args.csv} "
              f"[source: {frame.attrs.get('source')}]")
        return 0
    _print_frame(frame, args.rows)
    print(f"{len(frame)} bars of {args.symbol} ({args.timeframe}, {args.days} days) "
          f"from {frame.attrs.get('source')}")
    return 0


def _plot(frame: Any, args: argparse.Namespace) -> None:
    """Draw the bars and the journal's fills of the symbol to ``args.plot``."""
    from ..symbols import parse_symbol
    from ..trade_journal.api import journal_path
    from ..trade_journal.store import JournalUnreadableError, read_rows

    symbol = parse_symbol(args.symbol).symbol
    fills: list[dict[str, Any]] = []
    path = journal_path()
    if path is not None:
        try:
            fills = read_rows(path, kind="fill", symbol=symbol)
        except JournalUnreadableError:
            fills = []  # the chart is still worth drawing
    try:
        from ..charts import write_chart

        written = write_chart(frame, args.plot, symbol, fills)
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    print(f"drew {len(frame)} bars of {symbol} ({args.timeframe}) to {written}")


def _print_frame(frame: Any, rows: int) -> None:
    shown = frame.tail(rows).copy()
    shown["timestamp"] = shown["timestamp"].dt.strftime("%Y-%m-%d %H:%M")
    shown = shown.rename(columns={"timestamp": "timestamp (UTC)"})
    print(shown.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))


# -- simulator and demo ------------------------------------------------------


def _sim(args: argparse.Namespace) -> int:
    from ..sim import MarketClock, ServeInfo, serve_forever

    clock = None
    if args.at:
        try:
            clock = MarketClock.at(args.at)
        except ValueError as exc:
            raise CLIError(f"--at: {exc}") from None
    portal_kwargs: dict[str, Any] = {"tls": not args.no_tls}
    if args.penalty is not None:
        portal_kwargs["penalty_s"] = args.penalty

    def ready(info: ServeInfo) -> None:
        # The bound ports (with --port 0 / --portal 0 only known now) and the
        # CA file a client needs, on stdout for scripts to read.
        print(f"paper TWS simulator on {info.host}:{info.port} (account {info.account}, "
              f"seed {args.seed}); Ctrl-C stops it", flush=True)
        if info.portal_url:
            print(f"Client Portal on {info.portal_url}", flush=True)
            if info.portal_ca:
                print(f"IB_PORTAL_CA={info.portal_ca}", flush=True)

    logging.getLogger("ib_nice_funcs.sim").setLevel(logging.INFO)
    try:
        serve_forever(
            host=args.host, port=args.port, seed=args.seed, account=args.account,
            enforce_pacing=not args.no_pacing, on_ready=ready, clock=clock,
            portal_port=args.portal,
            portal_kwargs=portal_kwargs if args.portal is not None else None,
        )
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise CLIError(f"cannot start the simulator on {args.host}:{args.port}: {exc}") from None
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ..client import Client
    from ..sim import run_simulator

    symbols = ["AAPL", "MSFT", "EURUSD", "BTC-USD"]
    with run_simulator(seed=args.seed) as sim:
        print(f"Started the embedded paper TWS simulator on 127.0.0.1:{sim.port}\n")
        # The demo's paper trade is journaled apart from the user's own journal.
        # The client dates its bar windows by the simulator's clock (not configure()'s).
        with Client(host="127.0.0.1", port=sim.port, sources="ib", timeout=15,
                    journal="off", clock=sim.market.clock) as client:
            for round_no in range(1, args.rounds + 1):
                if round_no > 1:
                    time.sleep(1.0)  # let the quotes move (prices are cached for 1 s)
                prices = client.prices(symbols)
                print(f"Live prices, round {round_no}/{args.rounds} "
                      f"({time.strftime('%H:%M:%S', time.gmtime())} UTC):")
                print_table([(s, fmt_price(p)) for s, p in prices.items()], ("symbol", "price"))
                print()
            # Four days always hold a stock session, even run on a Sunday or a Monday morning.
            frame = client.ohlcv("AAPL", "1h", 4)
            print("AAPL, 1-hour bars, last 4 days (tail; times UTC):")
            _print_frame(frame, 8)
            print(f"\n{len(frame)} bars, source: {frame.attrs.get('source')}\n")
            _demo_trade(client)
    print("\nNext: `ib-nice-funcs sim` runs this paper gateway for your own agents, "
          "`ib-nice-funcs dashboard` watches them live in a browser, and examples/ "
          "(sma_agent.py, install_into_module.py) shows agents to start from. Point them at "
          "TWS / IB Gateway (IB_PORT) to trade for real (paper first).")
    return 0


def _demo_trade(client: Any) -> None:
    """A paper market buy of BTC-USD (crypto trades around the clock), then its position."""
    symbol = "BTC-USD"
    print(f"Paper trade: market_buy({symbol!r}, 1000) on the simulator's paper account")
    result = client.trading.market_buy(symbol, 1000)
    print(f"  {result['status']}: bought {result['filled_qty']:g} {symbol} at "
          f"{fmt_price(result['avg_price'])} (order id {result['order_id']}, "
          f"client order id {result['client_order_id']})")
    position = client.trading.get_position(symbol)
    pnl = position["unrealized_pnl"] or 0.0
    print(f"  position: {position['quantity']:g} {symbol}, average cost "
          f"{fmt_price(position['avg_cost'])}, price {fmt_price(position['current_price'])}, "
          f"value ${position['market_value']:,.2f}, unrealized P&L "
          f"{'-' if pnl < 0 else ''}${abs(pnl):,.2f}")


def _doctor(args: argparse.Namespace) -> int:
    from ..config import get_settings
    from ..doctor import format_check, run_checks

    overrides: dict[str, Any] = {}
    for key in ("host", "port", "client_id"):
        value = getattr(args, key, None)
        if value is not None:
            overrides[key] = value
    settings = get_settings().replace(**overrides) if overrides else get_settings()
    probe = args.timeout if args.timeout is not None else 3.0
    print(f"ib-nice-funcs doctor: {settings.host}:{settings.port}, client id {settings.client_id}")
    checks = run_checks(settings, probe_timeout=probe, symbol=args.symbol,
                        on_check=lambda c: print(format_check(c), flush=True))
    failed = [c.name for c in checks if c.failed]
    if failed:
        print(f"\n{len(failed)} check(s) failed: {', '.join(failed)}")
        return 1
    print("\nall checks passed")
    return 0


def _costs(args: argparse.Namespace) -> int:
    from ..costs import format_cost_report, plan_commissions, plan_market_data

    commissions = plan_commissions(args.trades, args.shares, args.price, args.option_trades,
                                   args.contracts)
    exchanges, listings = [], {}
    for item in args.exchange or []:
        if "=" in item:
            symbol, _, exchange = item.partition("=")
            listings[symbol.strip()] = exchange.strip()
        else:
            exchanges.append(item)
    monthly = commissions.total if args.commissions is None else args.commissions
    data = plan_market_data(args.symbols, exchanges, args.professional, monthly, listings)
    print(format_cost_report(commissions, data))
    return 0


# -- parser ------------------------------------------------------------------


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the data, simulator and set-up subcommands to the ``ib-nice-funcs`` parser.

    Args:
        sub: The argparse subparsers object.
        common: Parent parser with --host/--port/--client-id/--timeout/--source.
    """
    p = sub.add_parser("price", parents=[common], help="current prices")
    p.add_argument("symbols", nargs="+", metavar="SYMBOL")

    p = sub.add_parser("ohlcv", parents=[common], help="OHLCV bars")
    p.add_argument("symbol")
    p.add_argument("-t", "--timeframe", default="1h")
    p.add_argument("-d", "--days", type=float, default=3.0, help="days back (fractional allowed)")
    p.add_argument("--csv", metavar="FILE", help="write all bars to FILE instead of printing")
    p.add_argument("--plot", metavar="FILE.png|FILE.html",
                   help="also draw candles and volume to a PNG or an HTML page, the journal's "
                        "fills marked; needs the dashboard extra")
    p.add_argument("--rows", type=int, default=20, help="rows to print (default 20)")

    p = sub.add_parser("sim", help="run the paper TWS simulator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4002)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--account", default="DU1234567",
                   help="paper ids start with D; others act as live")
    p.add_argument("--no-pacing", action="store_true",
                   help="do not enforce IB's historical pacing rules")
    p.add_argument("--portal", type=int, nargs="?", const=5000, metavar="PORT",
                   help="also serve the Client Portal REST API "
                        "(default port 5000; 0 = any free port)")
    p.add_argument("--no-tls", action="store_true", help="serve the Client Portal over plain HTTP")
    p.add_argument("--penalty", type=float, metavar="SECONDS",
                   help="Client Portal penalty box length after repeated 429s "
                        "(default 600; 0 = none)")
    p.add_argument("--at", metavar="'YYYY-MM-DD HH:MM[:SS] [zone]'",
                   help="start the market clock at this time (New York unless a zone is given), "
                        "e.g. to test a closed market or the close")

    p = sub.add_parser("demo", help="prices, bars and a paper trade on the embedded simulator")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=3)

    p = sub.add_parser("doctor", parents=[common],
                       help="check the gateway, API session, account, market data and portal")
    p.add_argument("--symbol", default="AAPL", help="symbol the market-data check prices (AAPL)")

    p = sub.add_parser("costs", help="monthly commissions and market-data fees, estimated")
    p.add_argument("symbols", nargs="*", metavar="SYMBOL", help="symbols you want quotes for")
    p.add_argument("--trades", type=int, default=0, help="stock orders per month")
    p.add_argument("--shares", type=float, default=100, help="shares per stock order (100)")
    p.add_argument("--price", type=float, help="share price in USD (applies the 1%% cap)")
    p.add_argument("--option-trades", type=int, default=0, dest="option_trades",
                   help="option orders per month")
    p.add_argument("--contracts", type=int, default=1, help="contracts per option order (1)")
    p.add_argument("--exchange", action="append", metavar="EXCH|SYMBOL=EXCH",
                   help="add an exchange's data (NYSE, NASDAQ, ARCA...), or give a symbol's "
                        "listing exchange; repeatable")
    p.add_argument("--professional", action="store_true", help="professional subscriber prices")
    p.add_argument("--commissions", type=float,
                   help="monthly commissions for the $30 waiver (default: the estimate)")

    for name, handler in (("price", _price), ("ohlcv", _ohlcv), ("sim", _sim), ("demo", _demo),
                          ("doctor", _doctor), ("costs", _costs)):
        command(name)(handler)
