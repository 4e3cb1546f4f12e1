"""An agent that trades: small crypto round trips on a paper gateway, for the dashboard.

    ib-nice-funcs sim                        # terminal 1: the paper gateway on 4002
    python examples/paper_trader.py          # terminal 2: this agent
    ib-nice-funcs dashboard                  # terminal 3: open the URL it prints
    ib-nice-funcs report --since today       # afterwards: P&L, slippage, commissions

Crypto trades around the clock, so the paper gateway fills it at any hour.
Every order is journaled under this script's name ("paper_trader"; set
IB_NICE_FUNCS_AGENT to change it). Ctrl-C stops it; the dashboard's
Emergency stop flattens whatever it holds.
"""

from __future__ import annotations

import argparse
import time

import ib_nice_funcs as n

SYMBOLS = ["BTC-USD", "ETH-USD"]


def step(symbol: str, usd: float) -> None:
    position = n.get_position(symbol)
    if position.get("has_position"):
        result = n.market_sell(symbol, 100)
        verb = "sold"
    else:
        result = n.market_buy(symbol, usd)
        verb = "bought"
    if result.get("success"):
        print(f"{verb} {result['filled_qty']:g} {symbol} at {result['avg_price']:,.2f}")
    else:
        print(f"{symbol}: {result.get('error')}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--every", type=float, default=10.0, help="seconds between trades (10)")
    parser.add_argument("--usd", type=float, default=500.0, help="dollars per buy (500)")
    parser.add_argument("--rounds", type=int, default=0, help="stop after N trades (0: never)")
    args = parser.parse_args()
    done = 0
    try:
        while not args.rounds or done < args.rounds:
            step(SYMBOLS[done % len(SYMBOLS)], args.usd)
            done += 1
            time.sleep(args.every)
    except KeyboardInterrupt:
        pass
    finally:
        n.close()


if __name__ == "__main__":
    main()
