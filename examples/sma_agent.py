"""A small nice_funcs-style agent, run against the embedded paper simulator.

    python examples/sma_agent.py            # simulator on a free port
    IB_PORT=4002 python examples/sma_agent.py --real   # your TWS / IB Gateway (paper!)

It reads the classic get_data frame and prints what it would do. It does not
trade: swap the print for ``n.market_buy(symbol, usd_size)`` once you trust it.
"""

from __future__ import annotations

import argparse
import contextlib

import ib_nice_funcs as n

SYMBOLS = ["AAPL", "MSFT", "BTC-USD", "EURUSD"]
DAYSBACK_4_DATA = 3
DATA_TIMEFRAME = "1H"


def decide(symbol: str) -> str:
    df = n.get_data(symbol, DAYSBACK_4_DATA, DATA_TIMEFRAME)
    if df.empty:
        return "no data"
    last = df.iloc[-1]
    if last["MA40"] != last["MA40"]:  # NaN: fewer than 40 bars in the window
        return f"WAIT (only {len(df)} bars; MA40 needs 40)"
    if last["MA20_above_MA40"] and last["RSI"] < 70:
        return f"BUY  (close {last['Close']:.2f}, RSI {last['RSI']:.0f})"
    if not last["Price_above_MA40"]:
        return f"SELL (close {last['Close']:.2f} under MA40 {last['MA40']:.2f})"
    return f"HOLD (close {last['Close']:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--real", action="store_true",
                        help="use IB_HOST/IB_PORT instead of the simulator")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        if not args.real:
            from ib_nice_funcs.sim import run_simulator

            sim = stack.enter_context(run_simulator(seed=42))
            n.configure(port=sim.port)
        for symbol in SYMBOLS:
            print(f"{symbol:8} {n.token_price(symbol)!s:>12}  {decide(symbol)}")
        n.close()


if __name__ == "__main__":
    main()
