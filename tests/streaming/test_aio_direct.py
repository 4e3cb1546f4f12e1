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


def test_aio_trading_awaits_the_loop_thread_without_a_thread_per_call(fresh_sim, new_client_id):
    """aio's trading helpers await the Trader's coroutine twins: no pool thread per call,
    the same results and failure values as the blocking functions."""
    n.configure(host="127.0.0.1", port=fresh_sim.port, client_id=new_client_id(), sources="ib",
                timeout=10, clock=fresh_sim.market.clock, max_position_usd=1e9,
                max_exposure_usd=1e9)
    assert n.token_price("AAPL") > 0
    idle = _aio_threads()
    most = 0

    async def agent():
        nonlocal most
        calls = [asyncio.ensure_future(aio.market_buy("AAPL", 500)) for _ in range(8)]
        calls.append(asyncio.ensure_future(aio.get_account_value()))
        while not all(c.done() for c in calls):
            most = max(most, _aio_threads())
            await asyncio.wait(calls, timeout=0.05)
        position = await aio.get_position("AAPL")
        return [c.result() for c in calls], position

    results, position = asyncio.run(agent())
    buys, value = results[:-1], results[-1]
    assert all(b["success"] and b["status"] == "Filled" for b in buys)
    assert len({b["client_order_id"] for b in buys}) == 8
    assert value > 0
    assert position["has_position"] and position["quantity"] == sum(b["filled_qty"] for b in buys)
    assert most == idle  # no thread waited for any of them


def test_aio_trading_failure_values_match_the_blocking_functions(fresh_sim, new_client_id):
    n.configure(host="127.0.0.1", port=fresh_sim.port, client_id=new_client_id(), sources="ib",
                timeout=5, clock=fresh_sim.market.clock, max_position_usd=100)
    assert n.token_price("AAPL") > 0

    async def agent():
        return await aio.market_buy("AAPL", 5_000), await aio.chunk_kill("MSFT", 100)

    refused, chunk = asyncio.run(agent())
    assert refused["success"] is False and refused["risk_limit"] == "max_position_usd"
    assert refused == {**n.market_buy("AAPL", 5_000), "client_order_id":
                       refused["client_order_id"]}
    assert bool(chunk) and chunk["success"]  # flat: nothing to do, truthy as the blocking one
