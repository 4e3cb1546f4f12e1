"""aio data calls await the loop thread directly: no pool to queue behind, nothing holding exit."""

from __future__ import annotations

import asyncio
import gc
import logging
import subprocess
import sys
import textwrap
import threading

import ib_nice_funcs as n
from ib_nice_funcs import aio


def _aio_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("ib-nice-funcs-aio"))


def test_a_hundred_concurrent_calls_use_no_thread_each(fresh_sim, new_client_id, caplog):
    n.configure(host="127.0.0.1", port=fresh_sim.port, client_id=new_client_id(), sources="ib",
                timeout=2, clock=fresh_sim.market.clock)
    assert n.token_price("AAPL") > 0  # connected, AAPL qualified
    n.default_client().clear_caches()
    fresh_sim.set_blackhole(True)  # every call now waits for its whole timeout
    caplog.set_level(logging.ERROR, logger="asyncio")
    idle = _aio_threads()  # the trading helpers' pool, if an earlier test started it
    most = 0

    async def agent():
        nonlocal most
        calls = [asyncio.ensure_future(aio.token_prices(["AAPL"])) for _ in range(100)]
        while not all(c.done() for c in calls):
            most = max(most, _aio_threads())
            await asyncio.wait(calls, timeout=0.05)
        return [c.result() for c in calls]

    results = asyncio.run(agent())
    fresh_sim.set_blackhole(False)
    assert results == [{"AAPL": None}] * 100
    assert most == idle  # none waited on a thread (a pool would have held 32)
    gc.collect()
    assert "never retrieved" not in caplog.text and "Task was destroyed" not in caplog.text


def test_a_cancelled_aio_bar_call_cancels_its_download(fresh_sim, new_client_id):
    n.configure(host="127.0.0.1", port=fresh_sim.port, client_id=new_client_id(), sources="ib",
                timeout=30, clock=fresh_sim.market.clock)
    client = n.default_client()
    assert n.token_price("BTC-USD") > 0
    fresh_sim.set_latency(0.3)

    async def agent():
        call = asyncio.ensure_future(aio.get_ohlcv_data("BTC-USD", "5m", 98))  # 15 requests
        await asyncio.sleep(0.5)  # the first burst is out; the rest wait for pacing slots
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)

    asyncio.run(agent())
    fresh_sim.set_latency(0.0)
    client.server_time()
    sent = fresh_sim.request_counts().get("reqHistoricalData", 0)
    assert 1 <= sent < 15
    assert len(client.source("ib").pacing) == sent  # unsent slots given back
    client.server_time()
    assert fresh_sim.request_counts().get("reqHistoricalData", 0) == sent


def test_a_pending_call_does_not_hold_interpreter_exit(fresh_sim):
    script = textwrap.dedent(f"""
        import asyncio, ib_nice_funcs as n
        from ib_nice_funcs import aio
        n.configure(host="127.0.0.1", port={fresh_sim.port}, client_id=977, sources="ib,yfinance",
                    timeout=120)
        async def main():
            asyncio.ensure_future(aio.token_price("AAPL"))
            asyncio.ensure_future(aio.get_ohlcv_data("AAPL", "1h", 2, source="yfinance"))
            asyncio.ensure_future(aio.get_ohlcv_data("BTC-USD", "5m", 60, source="ib"))
            await asyncio.sleep(0.3)
        asyncio.run(main())
        print("left")
    """)
    fresh_sim.set_blackhole(True)  # the price call would wait its whole 120 s
    # yfinance is stubbed to hang as well (no network in tests).
    stub = "import sys, types, threading; m = types.ModuleType('yfinance'); " \
           "m.Ticker = lambda t: threading.Event().wait(); sys.modules['yfinance'] = m\n"
    done = subprocess.run([sys.executable, "-c", stub + script], capture_output=True, text=True,
                          timeout=60)
    fresh_sim.set_blackhole(False)
    assert done.returncode == 0, done.stderr
    assert "left" in done.stdout
    assert "Task was destroyed" not in done.stderr and "never retrieved" not in done.stderr
