"""One trading loop shaped like the Moon Dev trading agent, against the paper simulator.

    python examples/moondev_style_loop.py                 # the SOLANA-shaped face
    python examples/moondev_style_loop.py --face aster    # the Aster face, BTC as a coin name
    IB_PORT=4002 python examples/moondev_style_loop.py --real   # your paper TWS / IB Gateway

The calls are the agent's, with its argument shapes: collect data, decide
(here an MA rule instead of an LLM swarm), exit on SELL with ``chunk_kill``,
enter on BUY with ``ai_entry`` sized from the cash balance, then check the
position. Written for this package; the agents themselves are not included.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
from typing import Any

import ib_nice_funcs
from ib_nice_funcs import hyperliquid as hl

USDC_ADDRESS = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
MAX_POSITION_PERCENTAGE = 0.1  # of the cash balance (SOLANA) / margin (aster: x LEVERAGE)
LEVERAGE = 9
max_usd_order_size = 500
slippage = 199


def decide(frame: Any) -> str:
    """BUY above a rising MA40, SELL under it (the classic columns or HyperLiquid's)."""
    if frame is None or frame.empty:
        return "NOTHING"
    last = frame.iloc[-1]
    close = last["Close"] if "Close" in frame else last["close"]
    ma = last["MA40"] if "MA40" in frame else last["sma_50"]
    if ma != ma:
        return "NOTHING"
    return "BUY" if close > ma else "SELL"


def one_cycle(n: Any, face: str, tokens: list[str], force: str | None = None) -> dict[str, str]:
    """One cycle of the agent: data, decisions, exits, entries. Returns the decisions."""
    perp = face != "solana"
    decisions = {}
    for token in tokens:
        if perp:
            # The collector's call in ASTER / HYPERLIQUID mode.
            frame = hl.get_data(symbol=token, timeframe="1h", bars=72, add_indicators=True)
        else:
            frame = n.get_data(token, 3, "1H")
        decisions[token] = force or decide(frame)
    for token, action in decisions.items():
        held = n.get_token_balance_usd(token)
        if held > 0 and action == "SELL":
            n.chunk_kill(token, max_usd_order_size, slippage)
        elif held <= 0 and action == "BUY":
            if perp:
                if face == "aster":
                    balance = n.get_account_balance()["total_equity"]
                else:
                    balance = n.get_account_value(n._get_account_from_env())
                size = balance * MAX_POSITION_PERCENTAGE / 100 * LEVERAGE
                ok = n.ai_entry(token, size, leverage=LEVERAGE)
                pos = n.get_position(token)
                print(f"  {token}: entry {'ok' if ok else 'failed'}, position_amount "
                      f"{pos and pos['position_amount']}")
            else:
                size = n.get_token_balance_usd(USDC_ADDRESS) * MAX_POSITION_PERCENTAGE / 100
                ok = n.ai_entry(token, size)
                print(f"  {token}: entry {'ok' if ok else 'failed'}, "
                      f"now ${n.get_token_balance_usd(token):,.2f}")
    return decisions


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--face", choices=["solana", "aster", "hyperliquid"], default="solana")
    parser.add_argument("--real", action="store_true",
                        help="use IB_HOST/IB_PORT, not the simulator")
    args = parser.parse_args(argv)
    n: Any = (ib_nice_funcs if args.face == "solana"
              else importlib.import_module(f"ib_nice_funcs.{args.face}"))
    tokens = ["BTC-USD", "ETH-USD"] if args.face == "solana" else ["BTC", "ETH"]
    with contextlib.ExitStack() as stack:
        if not args.real:
            from ib_nice_funcs.sim import run_simulator

            sim = stack.enter_context(run_simulator(seed=42))
            ib_nice_funcs.configure(port=sim.port, sources="ib")
        for cycle, force in enumerate([None, "BUY", "SELL"], 1):
            print(f"cycle {cycle}: {one_cycle(n, args.face, tokens, force)}")
        ib_nice_funcs.close()


if __name__ == "__main__":
    main()
