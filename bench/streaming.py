"""Benchmark: live tickers and kept-up-to-date bars, against the simulator with pacing enforced.

Not a test: it prints a table and, with ``--json FILE``, writes the figures.

    python bench/streaming.py [--calls 20000] [--polls 30] [--json streaming.json]

Metrics:

* ``warm_token_price_us``: median of ``ib_nice_funcs.token_price(sym)`` for a
  symbol with a live ticker (goal <= 20 us), and the messages those calls
  sent (read from the simulator's request counts before and after; goal 0).
  ``warm_client_price_us`` is the same through ``Client.price``.
* ``poll_*``: the 20-symbol agent of issue 5: 15-minute bars of 20 symbols
  every 60 s for 30 minutes (time compressed: the subscriptions' clock moves
  60 s per poll and the client's 15 s bar cache is emptied between polls).
  Historical requests sent (goal <= 20, one per symbol), pacing violations
  the simulator reported (goal 0), errors, and the median time of one poll
  of 20 symbols.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SYMBOLS = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "TSLA", "META", "SPY", "QQQ", "IBM", "JPM",
           "BRK.B", "EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCAD", "USDCHF", "BTC-USD",
           "ETH-USD"]
GOALS = {"warm_token_price_us": 20.0, "warm_messages": 0, "poll_requests": 20,
         "poll_pacing_violations": 0, "poll_errors": 0}


class _Counter(logging.Handler):
    """Counts the simulator's "pacing violation" log records."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "pacing violation" in record.getMessage():
            self.count += 1


def median_call_us(fn: Any, calls: int, batch: int = 100) -> float:
    """Median per-call time in microseconds over batches of ``batch`` calls."""
    samples = []
    for _ in range(max(1, calls // batch)):
        t0 = time.perf_counter()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter() - t0) / batch * 1e6)
    return statistics.median(samples)


def bench_warm(port: int, handle: Any, calls: int) -> dict[str, float]:
    import ib_nice_funcs as n

    n.configure(host="127.0.0.1", port=port, client_id=901, sources="ib", timeout=15)
    symbol = "BTC-USD"
    n.token_price(symbol)
    n.default_client()._prices.clear()
    n.token_price(symbol)  # the second ask opens the live ticker
    client = n.default_client()
    assert client.live_price(symbol) is not None, "the ticker did not go live"
    before = handle.request_counts()
    warm_module = median_call_us(lambda: n.token_price(symbol), calls)
    warm_client = median_call_us(lambda: client.price(symbol), calls)
    after = handle.request_counts()
    sent = sum(after.values()) - sum(before.values())
    n.close()
    return {"warm_token_price_us": warm_module, "warm_client_price_us": warm_client,
            "warm_calls": 2 * calls, "warm_messages": sent}


def bench_polling(port: int, handle: Any, polls: int) -> dict[str, float]:
    from ib_nice_funcs import Client

    pacing = _Counter()
    logging.getLogger("ib_nice_funcs.sim").addHandler(pacing)
    logging.getLogger("ib_nice_funcs.sim").setLevel(logging.INFO)
    fake_now = [1_000.0]
    errors = 0
    poll_times = []
    before = handle.request_counts().get("reqHistoricalData", 0)
    with Client(host="127.0.0.1", port=port, client_id=902, sources="ib", timeout=30) as client:
        client.source("ib").barsubs.clock = lambda: fake_now[0]
        for _ in range(polls):
            t0 = time.perf_counter()
            for symbol in SYMBOLS:
                try:
                    frame = client.ohlcv(symbol, "15m", 3)
                    if frame.empty:
                        errors += 1
                except Exception as exc:  # noqa: BLE001 - counted
                    errors += 1
                    print(f"  {symbol}: {exc}", file=sys.stderr)
            poll_times.append(time.perf_counter() - t0)
            client._bars.clear()  # 60 s later the client's 15 s bar cache has expired
            fake_now[0] += 60.0
        client.server_time()  # the simulator has read everything we sent
    sent = handle.request_counts().get("reqHistoricalData", 0) - before
    logging.getLogger("ib_nice_funcs.sim").removeHandler(pacing)
    return {"poll_symbols": len(SYMBOLS), "poll_rounds": polls,
            "poll_minutes_simulated": polls, "poll_requests": sent,
            "poll_requests_naive": len(SYMBOLS) * polls,
            "poll_pacing_violations": pacing.count, "poll_errors": errors,
            "poll_first_round_s": poll_times[0],
            "poll_warm_round_ms": statistics.median(poll_times[1:]) * 1e3 if polls > 1 else 0.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20_000, help="warm price calls per metric")
    parser.add_argument("--polls", type=int, default=30, help="polling rounds (1 per minute)")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    args = parser.parse_args(argv)

    from ib_nice_funcs.sim import run_simulator

    results: dict[str, float] = {}
    with run_simulator(seed=7, enforce_pacing=True) as handle:
        results.update(bench_warm(handle.port, handle, args.calls))
        results.update(bench_polling(handle.port, handle, args.polls))

    rows = [
        ("warm token_price, median", f"{results['warm_token_price_us']:.2f} us", "<= 20 us",
         results["warm_token_price_us"] <= GOALS["warm_token_price_us"]),
        ("warm Client.price, median", f"{results['warm_client_price_us']:.2f} us", "", None),
        (f"messages for {results['warm_calls']:,} warm calls", f"{results['warm_messages']}", "0",
         results["warm_messages"] == 0),
        (f"poll: {len(SYMBOLS)} symbols x 15m bars x {args.polls} min, historical requests",
         f"{results['poll_requests']}", f"<= {len(SYMBOLS)} (naive: "
         f"{results['poll_requests_naive']})", results["poll_requests"] <= len(SYMBOLS)),
        ("poll: pacing violations (simulator)", f"{results['poll_pacing_violations']}", "0",
         results["poll_pacing_violations"] == 0),
        ("poll: failed calls", f"{results['poll_errors']}", "0", results["poll_errors"] == 0),
        ("poll: first round (subscribing)", f"{results['poll_first_round_s']:.2f} s", "", None),
        ("poll: later round of 20 symbols, median", f"{results['poll_warm_round_ms']:.1f} ms", "",
         None),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'metric'.ljust(width)}  {'value':>12}  goal")
    print(f"{'-' * width}  {'-' * 12}  {'-' * 24}")
    for name, value, goal, ok in rows:
        mark = "" if ok is None else ("  ok" if ok else "  MISSED")
        print(f"{name.ljust(width)}  {value:>12}  {goal}{mark}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0 if all(ok is not False for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
