"""Benchmark: what the trade journal costs an order, and how soon the dashboard shows a fill.

Starts the paper simulator (wall clock; crypto fills at any hour) and two
Clients on it, one journaling to a temporary SQLite file and one with the
journal off, and times market buys and sells of BTC-USD alternately on each
(same gateway, same run, medians). Reports:

* ``order_ms_off`` / ``order_ms_on``: median seconds x 1000 of one market order;
* ``ratio``: on / off (goal <= 1.25: the journal writes on its own thread;
  these orders price themselves, so the arrival quote comes from the cache);
* with ``--browser``: ``fill_to_page_s``, median seconds from a fill to its
  row on the dashboard in headless Chromium, no reload (goal <= 2).

    python bench/journal.py [--orders 40] [--browser] [--json journal.json]

Exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GOALS = {"ratio": 1.25, "fill_to_page_s": 2.0}


def _order_times(orders: int, journal: Path) -> dict[str, float]:
    from ib_nice_funcs import Client
    from ib_nice_funcs.sim import run_simulator

    with run_simulator(seed=7) as sim:
        common: dict[str, Any] = {"host": "127.0.0.1", "port": sim.port, "sources": "ib",
                                  "timeout": 15}
        with Client(client_id=701, journal=str(journal), agent="bench", **common) as on, \
                Client(client_id=702, journal="off", **common) as off:
            times: dict[str, list[float]] = {"on": [], "off": []}
            # One account: fixed quantities, both buy then both sell, so neither sells
            # what the other holds.
            for client in (on, off):  # warm-up: connection, contract details, tickers
                client.trading.place_order("BTC-USD", "BUY", 0.01)
            for client in (on, off):
                client.trading.place_order("BTC-USD", "SELL", 0.01)
            for i in range(orders):
                side = "SELL" if i % 2 else "BUY"
                pair = (("on", on), ("off", off)) if i % 4 < 2 else (("off", off), ("on", on))
                for name, client in pair:
                    start = time.perf_counter()
                    client.trading.place_order("BTC-USD", side, 0.01)
                    times[name].append(time.perf_counter() - start)
            on.trading.journal.writer.flush(30)
    off_ms = statistics.median(times["off"]) * 1000
    on_ms = statistics.median(times["on"]) * 1000
    return {"order_ms_off": round(off_ms, 2), "order_ms_on": round(on_ms, 2),
            "ratio": round(on_ms / off_ms, 3)}


def _fill_to_page(fills: int, journal: Path) -> dict[str, float]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    from ib_nice_funcs import Client
    from ib_nice_funcs.dashboard.app import create_app
    from ib_nice_funcs.dashboard.server import DashboardServer
    from ib_nice_funcs.sim import run_simulator

    with run_simulator(seed=8) as sim:
        common: dict[str, Any] = {"host": "127.0.0.1", "port": sim.port, "sources": "ib",
                                  "journal": str(journal), "timeout": 15}
        with Client(client_id=711, agent="bench", **common) as agent, \
                Client(client_id=712, agent="dashboard", **common) as watcher:
            token = secrets.token_urlsafe(18)
            with DashboardServer(create_app(watcher, token, journal), "127.0.0.1", 0) as server:
                # Debian's chromium + chromedriver, named so selenium looks nothing up online.
                browser = shutil.which("chromium") or shutil.which("google-chrome")
                driver_path = shutil.which("chromedriver")
                if not browser or not driver_path:
                    raise RuntimeError("--browser needs chromium and chromedriver on PATH")
                options = webdriver.ChromeOptions()
                options.binary_location = browser
                for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
                    options.add_argument(arg)
                driver = webdriver.Chrome(service=Service(driver_path), options=options)
                try:
                    driver.get(server.url(token))
                    rows = "#fills tr[data-key]"
                    delays = []
                    for i in range(fills):
                        seen = len(driver.find_elements(By.CSS_SELECTOR, rows))
                        if i % 2:
                            agent.trading.market_sell("BTC-USD")
                        else:
                            agent.trading.market_buy("BTC-USD", 500)
                        start = time.monotonic()
                        while len(driver.find_elements(By.CSS_SELECTOR, rows)) <= seen:
                            if time.monotonic() - start > 30:
                                raise RuntimeError("the fill never reached the page")
                            time.sleep(0.02)
                        delays.append(time.monotonic() - start)
                finally:
                    driver.quit()
    return {"fill_to_page_s": round(statistics.median(delays), 3),
            "fill_to_page_max_s": round(max(delays), 3)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=40)
    parser.add_argument("--browser", action="store_true", help="also time the dashboard page")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = _order_times(args.orders, Path(tmp) / "bench.sqlite3")
        if args.browser:
            result.update(_fill_to_page(10, Path(tmp) / "page.sqlite3"))
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    missed = [k for k, goal in GOALS.items() if k in result and result[k] > goal]
    if missed:
        print(f"missed: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
