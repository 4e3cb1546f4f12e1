"""Benchmark: the ib_nice_funcs facade against raw ib_async, on the simulator, in one run.

Not a test: it prints each metric's median and the ratio facade / raw, and
writes them as JSON with ``--json FILE``. Both sides talk to the same
in-process paper simulator over loopback, so the ratio isolates what the
facade adds (the thread hop, validation, caching, frame conversion).

    python bench/bench.py [--rounds 15] [--json bench.json]

Metrics and goals (ratio = facade / raw, lower is better):

* ``hop``: one request round trip (reqCurrentTime) through the sync facade
  from the main thread vs ``await`` inside the loop. Goal <= 1.5.
* ``prices_cold``: 10 symbols, caches empty (contracts qualified anew) vs
  raw ``qualifyContractsAsync`` + ``asyncio.gather(reqTickersAsync...)``.
  Goal <= 1.2.
* ``ohlcv_10k``: about 10,000 1-minute bars end to end (request, bars to a
  DataFrame) vs raw ``reqHistoricalDataAsync`` + ``util.df``. Goal <= 1.0.
* ``bars_conversion``: our ``bars_to_frame`` vs ``util.df`` on the same
  10,000 bars. Goal: at least 5x faster (ratio <= 0.2).
* ``import``: ``import ib_nice_funcs`` vs ``import ib_async`` in a fresh
  interpreter (yfinance must not be imported). Goal <= 1.2.
* ``order_round_trip``: market order placed -> filled, facade vs raw
  ``placeOrder`` + waiting for the fill (when the simulator matches orders).
  Goal <= 1.2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from _servers import server_process

SYMBOLS = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "TSLA", "META", "SPY", "EURUSD", "BTC-USD"]
GOALS = {
    "hop": 1.5,
    "prices_cold": 1.2,
    "ohlcv_10k": 1.0,
    "bars_conversion": 0.2,
    "import": 1.2,
    "order_round_trip": 1.2,
}


def median_time(fn: Callable[[], Any], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def paired(
    ours: Callable[[], Any],
    raw: Callable[[], Awaitable[Any]],
    loop: asyncio.AbstractEventLoop,
    rounds: int,
    pause: float = 0.0,
) -> tuple[float, float]:
    """Medians of ours (sync, this thread) and raw (awaited in the loop), interleaved.

    Alternating the two sides sample by sample cancels the drift of a noisy
    machine (other processes, ib_async's 45 requests/s throttle filling up)
    that would bias whichever side runs second.
    """

    async def one_raw() -> float:
        t0 = time.perf_counter()
        await raw()
        return time.perf_counter() - t0

    ours_s, raw_s = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        ours()
        ours_s.append(time.perf_counter() - t0)
        if pause:
            time.sleep(pause)
        raw_s.append(asyncio.run_coroutine_threadsafe(one_raw(), loop).result(600))
        if pause:
            time.sleep(pause)
    return statistics.median(ours_s), statistics.median(raw_s)


def import_time(module: str, rounds: int) -> float:
    code = f"import time; t=time.perf_counter(); import {module}; print(time.perf_counter()-t)"
    samples = []
    for _ in range(rounds):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        samples.append(float(out.stdout.strip()))
    return statistics.median(samples)


def yfinance_imported_by_package() -> bool:
    code = "import sys, ib_nice_funcs; print('yfinance' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip() == "True"


@contextlib.contextmanager
def simulator_process() -> Iterator[int]:
    """The paper simulator in a process of its own (pacing off), so that its
    work does not share this interpreter's GIL with the code being measured."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [sys.executable, "-m", "ib_nice_funcs.cli", "sim", "--port", str(port), "--seed", "7",
            "--no-pacing"]
    with server_process(argv, port, "simulator"):
        yield port


def run(rounds: int) -> dict[str, dict[str, float]]:
    from ib_async import IB, util

    from ib_nice_funcs import Client
    from ib_nice_funcs.frames import bars_to_frame
    from ib_nice_funcs.symbols import parse_symbol
    from ib_nice_funcs.timeframes import PacingBudget

    results: dict[str, dict[str, float]] = {}

    def record(name: str, ours: float, raw: float) -> None:
        results[name] = {"facade_s": ours, "raw_s": raw,
                         "ratio": ours / raw if raw else float("nan")}

    with simulator_process() as port:
        client = Client(host="127.0.0.1", port=port, client_id=101, sources="ib", timeout=60)
        client.server_time()  # connect outside the measurements
        loop = client.gateway.loop.loop

        raw_ib = IB()
        asyncio.run_coroutine_threadsafe(
            raw_ib.connectAsync("127.0.0.1", port, clientId=102, timeout=10), loop
        ).result(30)

        # -- hop ---------------------------------------------------------
        record("hop", *paired(client.server_time, raw_ib.reqCurrentTimeAsync, loop, rounds * 20))

        # -- cold prices of 10 symbols -------------------------------------
        contracts_src = [parse_symbol(s) for s in SYMBOLS]

        def ours_prices() -> None:
            client.clear_caches()
            got = client.prices(SYMBOLS)
            assert all(v is not None for v in got.values()), got

        async def raw_prices() -> None:
            contracts = [i.to_ib_contract() for i in contracts_src]
            await raw_ib.qualifyContractsAsync(*contracts)
            await asyncio.gather(*(raw_ib.reqTickersAsync(c) for c in contracts))

        ours_prices()
        # Paused between samples so ib_async's own 45 requests/s throttle (20
        # requests a sample) does not decide the result.
        record("prices_cold", *paired(ours_prices, raw_prices, loop, rounds, pause=0.5))

        # -- 10,000 one-minute bars ----------------------------------------
        days = 10_000 / 1440
        btc = parse_symbol("BTC-USD")
        source = client.source("ib")  # reset its pacing budget: we measure requests, not waits

        def ours_ohlcv() -> None:
            client.clear_caches()
            source.pacing = PacingBudget()
            frame = client.ohlcv("BTC-USD", "1m", days)
            assert len(frame) >= 9_900, len(frame)

        raw_bars: list[Any] = []

        async def raw_ohlcv() -> None:
            contract = btc.to_ib_contract()
            await raw_ib.qualifyContractsAsync(contract)
            bars = await raw_ib.reqHistoricalDataAsync(
                contract, "", "7 D", "1 min", "AGGTRADES", False, formatDate=2
            )
            util.df(bars)
            raw_bars[:] = bars

        ours_ohlcv()
        record("ohlcv_10k", *paired(ours_ohlcv, raw_ohlcv, loop, rounds))

        # -- conversion alone ----------------------------------------------
        bars = list(raw_bars)
        record(
            "bars_conversion",
            median_time(lambda: bars_to_frame(bars), rounds * 2),
            median_time(lambda: util.df(bars), rounds * 2),
        )

        # -- order round trip ----------------------------------------------
        try:
            results.update(_orders(client, raw_ib, loop, rounds))
        except Exception as exc:  # noqa: BLE001 - report, keep the other metrics
            print(f"order round trip skipped: {exc}", file=sys.stderr)

        asyncio.run_coroutine_threadsafe(_disconnect(raw_ib), loop).result(10)
        client.close()

    record("import", import_time("ib_nice_funcs", rounds), import_time("ib_async", rounds))
    results["import"]["yfinance_imported"] = float(yfinance_imported_by_package())
    return results


async def _disconnect(ib: Any) -> None:
    ib.disconnect()


def _orders(client: Any, raw_ib: Any, loop: asyncio.AbstractEventLoop,
            rounds: int) -> dict[str, dict[str, float]]:
    """Market order placed -> filled, alternating sides so the position stays flat."""
    from ib_async import MarketOrder

    from ib_nice_funcs import Client
    from ib_nice_funcs.symbols import parse_symbol

    s = client.settings
    # Risk limits raised: the bench measures the round trip, not the refusal.
    trading_client = Client(
        host=s.host, port=s.port, client_id=103, sources="ib", timeout=60,
        max_position_usd=1e9, max_exposure_usd=1e9, max_daily_loss_usd=1e9,
    )
    trader = trading_client.trading
    sides = iter(["BUY", "SELL"] * (rounds + 2))

    def ours() -> None:
        result = trader.place_order("EURUSD", next(sides), 20_000, "MKT")
        assert result["success"] and result["status"] == "Filled", result

    # FX trades around the clock on weekdays, so the bench fills at any hour.
    contract = parse_symbol("EURUSD").to_ib_contract()
    raw_sides = iter(["BUY", "SELL"] * (rounds + 2))

    async def raw() -> None:
        await raw_ib.qualifyContractsAsync(contract)
        trade = raw_ib.placeOrder(contract, MarketOrder(next(raw_sides), 20_000))
        while not trade.isDone():
            await trade.statusEvent
        assert trade.orderStatus.status == "Filled"

    try:
        ours()
        ours()
        ours_s, raw_s = paired(ours, raw, loop, rounds)
    finally:
        trading_client.close()
    return {"order_round_trip": {"facade_s": ours_s, "raw_s": raw_s, "ratio": ours_s / raw_s}}


def table(results: dict[str, dict[str, float]]) -> str:
    lines = [
        "| metric | facade (median) | raw ib_async (median) | ratio | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in results.items():
        goal = GOALS.get(name)
        met = "yes" if goal is not None and row["ratio"] <= goal else "no"
        lines.append(
            f"| {name} | {row['facade_s'] * 1e3:.2f} ms | {row['raw_s'] * 1e3:.2f} ms | "
            f"{row['ratio']:.2f}x | <= {goal}x | {met} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="samples per metric (medians)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    results = run(args.rounds)
    print(table(results))
    if results["import"].get("yfinance_imported"):
        print("WARNING: importing ib_nice_funcs imported yfinance")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
