"""Benchmark: 100 concurrent ``aio`` calls against a gateway that never answers.

Not a test. Each call has a 2 s timeout; with the calls awaiting the loop
thread directly (no thread pool to queue behind) every one should end at
its own timeout, so the median should be about 2 s (it was about 5 s when
the calls queued for 32 pool threads). Two kinds are timed: a data call
(``aio.token_prices``) and a trading call (``aio.get_all_positions``, the
Trader's coroutine twin; it returns its failure value, None, at the timeout).

    python bench/aio_concurrency.py [--calls 100] [--timeout 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any


def main(argv: list[str] | None = None) -> int:
    import ib_nice_funcs as n
    from ib_nice_funcs import aio
    from ib_nice_funcs.sim import run_simulator

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    with run_simulator(seed=3) as sim:
        n.configure(host="127.0.0.1", port=sim.port, sources="ib", timeout=args.timeout)
        n.token_price("AAPL")  # connected
        n.default_client().clear_caches()
        sim.set_blackhole(True)

        async def timed(call: Any) -> float:
            t0 = time.perf_counter()
            await call()
            return time.perf_counter() - t0

        async def all_of(call: Any) -> list[float]:
            return await asyncio.gather(*(timed(call) for _ in range(args.calls)))

        kinds = {
            "aio.token_prices": lambda: aio.token_prices(["AAPL"]),
            "aio.get_all_positions": lambda: aio.get_all_positions(timeout=args.timeout),
        }
        took = {name: asyncio.run(all_of(call)) for name, call in kinds.items()}
        sim.set_blackhole(False)
        n.close()
    for name, times in took.items():
        print(f"{args.calls} concurrent {name}, timeout {args.timeout:g} s: median "
              f"{statistics.median(times):.2f} s, max {max(times):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
