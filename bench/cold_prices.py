"""Benchmark: cold batch prices and an unknown symbol, facade vs raw ib_async, in one run.

Not a test. For each gateway timing it prints medians of

* ``prices_cold``: ``Client.prices`` of 6 symbols with every cache cleared
  (contracts qualified anew) vs raw ``qualifyContractsAsync`` +
  ``asyncio.gather(reqTickersAsync...)``. Goal: ratio <= 1.2.
* ``unknown_symbol``: ``Client.prices`` of a symbol the gateway does not know
  (error 200) vs raw ``qualifyContractsAsync`` of it. Goal: ratio <= 1.2.

Both sides use the same gateway and the same event-loop thread. Gateways:
the project's paper simulator in a process of its own, as is (``sim``) and
with ``latency`` seconds before handling each message, one message at a
time per connection (``sim+latency``: a gateway that answers slowly and
never batches); and, when ``bench/second_gateway.py`` is present, that
independent server.

    python bench/cold_prices.py [--rounds 15] [--latency 0.02] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _servers import server_process

SYMBOLS = ["AAPL", "MSFT", "NVDA", "SPY", "EURUSD", "BTC-USD"]
UNKNOWN = "ZZQX"
GOAL = 1.2


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def gateway_process(code: str, port: int) -> contextlib.AbstractContextManager[int]:
    """Run ``code`` (a server listening on ``port``) in a process of its own."""
    return server_process([sys.executable, "-c", code], port)


def simulator_code(port: int, latency: float) -> str:
    return (
        "import asyncio\n"
        "from ib_nice_funcs.sim.tws import TWSSimulator\n"
        "async def main():\n"
        f"    sim = TWSSimulator(port={port}, seed=7, enforce_pacing=False)\n"
        f"    sim.latency = {latency!r}\n"
        "    await sim.start()\n"
        "    await asyncio.Event().wait()\n"
        "asyncio.run(main())\n"
    )


def second_gateway_code(port: int, delay: float) -> str:
    path = Path(__file__).with_name("second_gateway.py")
    return (
        "import runpy, sys\n"
        f"sys.argv = ['second_gateway', '--port', '{port}', '--delay', '{delay}']\n"
        f"runpy.run_path({str(path)!r}, run_name='__main__')\n"
    )


def measure(port: int, rounds: int) -> dict[str, dict[str, float]]:
    from ib_async import IB

    from ib_nice_funcs import Client
    from ib_nice_funcs.symbols import parse_symbol

    client = Client(host="127.0.0.1", port=port, client_id=301, sources="ib", timeout=60)
    client.server_time()  # connected outside the measurements
    loop = client.gateway.loop.loop
    raw_ib = IB()
    asyncio.run_coroutine_threadsafe(
        raw_ib.connectAsync("127.0.0.1", port, clientId=302, timeout=10), loop).result(30)
    instruments = [parse_symbol(s) for s in SYMBOLS]
    unknown = parse_symbol(UNKNOWN)

    def ours_prices() -> None:
        client.clear_caches()
        got = client.prices(SYMBOLS)
        assert all(v is not None for v in got.values()), got

    async def raw_prices() -> None:
        contracts = [i.to_ib_contract() for i in instruments]
        await raw_ib.qualifyContractsAsync(*contracts)
        await asyncio.gather(*(raw_ib.reqTickersAsync(c) for c in contracts))

    def ours_unknown() -> None:
        client.clear_caches()
        assert client.prices([UNKNOWN]) == {UNKNOWN: None}

    async def raw_unknown() -> None:
        await raw_ib.qualifyContractsAsync(unknown.to_ib_contract())

    results: dict[str, dict[str, float]] = {}
    for name, ours, raw in (("prices_cold", ours_prices, raw_prices),
                            ("unknown_symbol", ours_unknown, raw_unknown)):
        ours()  # warm the code paths, not the caches
        ours_s, raw_s = [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            ours()
            ours_s.append(time.perf_counter() - t0)
            time.sleep(0.3)  # ib_async's own 45 requests/s throttle must not decide it
            t0 = time.perf_counter()
            asyncio.run_coroutine_threadsafe(raw(), loop).result(120)
            raw_s.append(time.perf_counter() - t0)
            time.sleep(0.3)
        facade, bare = statistics.median(ours_s), statistics.median(raw_s)
        results[name] = {"facade_s": facade, "raw_s": bare, "ratio": facade / bare}
    asyncio.run_coroutine_threadsafe(_disconnect(raw_ib), loop).result(10)
    client.close()
    return results


async def _disconnect(ib: Any) -> None:
    ib.disconnect()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--latency", type=float, default=0.02,
                        help="seconds before each message is handled (default 0.02)")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    setups = [("sim", simulator_code, 0.0), ("sim+latency", simulator_code, args.latency)]
    if Path(__file__).with_name("second_gateway.py").exists():
        setups.append(("second_gateway", second_gateway_code, args.latency))
    report: dict[str, Any] = {}
    for label, code, delay in setups:
        port = _free_port()
        with gateway_process(code(port, delay), port):
            report[label] = measure(port, args.rounds)
    print(f"{'gateway':<16}{'metric':<16}{'facade s':>10}{'raw s':>10}{'ratio':>8}  goal")
    for label, metrics in report.items():
        for name, m in metrics.items():
            ok = "ok" if m["ratio"] <= GOAL else "MISSED"
            print(f"{label:<16}{name:<16}{m['facade_s']:>10.4f}{m['raw_s']:>10.4f}"
                  f"{m['ratio']:>8.2f}  <= {GOAL} {ok}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
