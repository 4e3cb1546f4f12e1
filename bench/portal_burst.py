"""Benchmark: a burst of 100 ``token_price`` calls through the Client Portal source.

Runs the project's Client Portal simulator over HTTPS loopback with IB's real
rate limits (10 requests/s overall, 10/s for snapshots, a 429 penalty box)
and points the module-level nice_funcs functions at it with
``source="portal"``. The price cache is switched off so every call reaches
the gateway. After a warm-up (session, pre-flight, conids, snapshot
subscriptions) it times the burst and reports:

* ``http_429``: 429 answers the gateway sent (goal 0);
* ``ratio``: elapsed time / the ideal time of the requests sent at exactly
  10 per second, ``(requests - 1) / 10`` (goal <= 1.2).

    python bench/portal_burst.py [--calls 100] [--threads 1] [--json portal_burst.json]

Exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from typing import Any

SYMBOLS = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "TSLA", "META", "SPY", "EURUSD", "BTC-USD"]
GOALS = {"http_429": 0, "ratio": 1.2}
RATE = 10.0

log = logging.getLogger("bench.portal_burst")


def run(calls: int, threads: int) -> dict[str, Any]:
    """Start a simulator, warm up, time ``calls`` token_price calls over ``threads`` threads."""
    import ib_nice_funcs as n
    from ib_nice_funcs.sim import run_portal_simulator

    with run_portal_simulator(seed=1) as cp:
        n.configure(portal_url=cp.url, portal_ca=cp.ca_path, sources="portal", price_ttl=1e-6,
                    timeout=30)
        try:
            warm = n.token_prices(SYMBOLS, source="portal")
            if any(v is None for v in warm.values()):
                raise RuntimeError(f"warm-up failed: {warm}")
            before = cp.request_counts()
            prices: list[float | None] = [None] * calls
            todo = iter(range(calls))
            lock = threading.Lock()

            def worker() -> None:
                while True:
                    with lock:
                        i = next(todo, None)
                    if i is None:
                        return
                    prices[i] = n.token_price(SYMBOLS[i % len(SYMBOLS)], source="portal")

            pool = [threading.Thread(target=worker) for _ in range(max(1, threads))]
            started = time.perf_counter()
            for t in pool:
                t.start()
            for t in pool:
                t.join(600)
            elapsed = time.perf_counter() - started
            sent = sum((cp.request_counts() - before).values())
            count_429 = cp.count_429
        finally:
            n.close()
    ideal = max(sent - 1, 1) / RATE
    return {
        "calls": calls,
        "threads": threads,
        "prices_ok": sum(1 for p in prices if p),
        "requests": sent,
        "http_429": count_429,
        "elapsed_s": round(elapsed, 3),
        "ideal_s": round(ideal, 3),
        "ratio": round(elapsed / ideal, 3),
        "rate_limit_per_s": RATE,
        "goals": GOALS,
    }


def table(result: dict[str, Any]) -> str:
    """The result as a small text table."""
    rows = [
        ("calls (threads)", f"{result['calls']} ({result['threads']})", ""),
        ("prices returned", str(result["prices_ok"]), f"= {result['calls']}"),
        ("HTTP requests", str(result["requests"]), ""),
        ("HTTP 429", str(result["http_429"]), f"= {GOALS['http_429']}"),
        ("elapsed", f"{result['elapsed_s']:.2f} s", ""),
        (f"ideal at {RATE:g} req/s", f"{result['ideal_s']:.2f} s", ""),
        ("elapsed / ideal", f"{result['ratio']:.3f}", f"<= {GOALS['ratio']}"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'metric':<{width}}  {'value':>12}  goal", "-" * (width + 22)]
    lines += [f"{name:<{width}}  {value:>12}  {goal}" for name, value, goal in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100, help="token_price calls in the burst")
    parser.add_argument("--threads", type=int, default=1, help="threads sharing the calls")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = run(args.calls, args.threads)
    print(table(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    ok = (result["http_429"] <= GOALS["http_429"] and result["ratio"] <= GOALS["ratio"]
          and result["prices_ok"] == result["calls"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
