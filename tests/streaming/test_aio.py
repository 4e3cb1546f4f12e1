"""ib_nice_funcs.aio used from an agent's own event loop, which must keep running."""

from __future__ import annotations

import asyncio
import inspect

import pandas as pd
import pytest

import ib_nice_funcs as n
from ib_nice_funcs import aio
from ib_nice_funcs.frames import CLASSIC_COLUMNS, OHLCV_COLUMNS


class _Heartbeat:
    """A task of the agent's loop that beats every 5 ms while the awaits run."""

    def __init__(self) -> None:
        self.beats = 0
        self._stop = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while not self._stop.is_set():
            self.beats += 1
            try:
                await asyncio.wait_for(self._stop.wait(), 0.005)
            except asyncio.TimeoutError:
                pass

    async def stop(self) -> int:
        self._stop.set()
        await self._task
        return self.beats


def test_data_coroutines_do_not_block_the_callers_loop(fresh_sim, new_client_id):
    fresh_sim.set_latency(0.05)  # every answer takes a while: the loop must beat meanwhile
    n.configure(host="127.0.0.1", port=fresh_sim.port, client_id=new_client_id(), sources="ib",
                timeout=20, clock=fresh_sim.market.clock)

    async def agent():
        heart = _Heartbeat()
        price, prices, bars, classic = await asyncio.gather(
            aio.token_price("AAPL"),
            aio.token_prices(["EURUSD", "BTC-USD"]),
            aio.get_ohlcv_data("BTC-USD", "1h", 1),
            aio.get_data("ETH-USD", 1, "1h"),
        )
        beats = await heart.stop()
        return price, prices, bars, classic, beats

    price, prices, bars, classic, beats = asyncio.run(agent())
    assert price > 0 and all(v > 0 for v in prices.values())
    assert list(bars.columns) == list(OHLCV_COLUMNS) and not bars.empty
    assert list(classic.columns) == list(CLASSIC_COLUMNS) and not classic.empty
    assert beats >= 20, beats  # the connect alone takes > 0.3 s at this latency


def test_failures_behave_like_the_sync_functions(use_sim, warnings_log):
    async def agent():
        missing = await aio.token_price("ZZZZ")
        frame = await aio.get_ohlcv_data("ZZZZ", "1h", 1)
        with pytest.raises(ValueError):
            await aio.get_ohlcv_data("AAPL", "7x", 1)
        return missing, frame

    missing, frame = asyncio.run(agent())
    assert missing is None and frame.empty
    assert "ZZZZ" in warnings_log.text


def test_a_warm_price_needs_no_thread(use_sim, monkeypatch):
    n.token_price("LTC-USD")
    n.default_client()._prices.clear()
    n.token_price("LTC-USD")  # live now

    async def no_hop(*args, **kwargs):
        raise AssertionError("the warm path must not leave the caller's thread")

    monkeypatch.setattr(n.default_client(), "price_async", no_hop)
    before = use_sim.request_counts()
    assert asyncio.run(aio.token_price("LTC-USD")) > 0
    assert use_sim.request_counts() == before


def test_async_price_stream_and_subscribe(use_sim):
    async def agent():
        heart = _Heartbeat()
        updates = [u async for u in aio.stream_prices(["BTC-USD", "ETH-USD"], duration=1.5)]
        got = asyncio.Queue()

        async def on_price(symbol, price, when):
            await got.put((symbol, price, when))

        sub = await aio.subscribe("EURUSD", on_price)
        first = await asyncio.wait_for(got.get(), 10)
        await sub.close()
        return updates, first, await heart.stop(), sub

    updates, first, beats, sub = asyncio.run(agent())
    assert {u.symbol for u in updates} == {"BTC-USD", "ETH-USD"}
    assert first[0] == "EURUSD" and first[1] > 0
    assert not sub.active and beats > 50


def test_async_stream_of_an_unknown_symbol_ends_with_a_warning(use_sim, warnings_log):
    async def agent():
        return [u async for u in aio.stream_prices("ZZZZ", timeout=5)]

    assert asyncio.run(agent()) == []
    assert "ZZZZ" in warnings_log.text


def test_trading_helpers_are_coroutines(use_sim):
    assert inspect.iscoroutinefunction(aio.get_position)
    assert inspect.iscoroutinefunction(aio.market_buy)
    position = asyncio.run(aio.get_position("AAPL"))
    assert isinstance(position, dict) and "has_position" in position
    with pytest.raises(AttributeError):
        aio.open_short  # noqa: B018


def test_gather_many_prices_concurrently(use_sim):
    symbols = ["AAPL", "MSFT", "GOOGL", "EURUSD", "GBPUSD", "BTC-USD"]

    async def agent():
        return await asyncio.gather(*(aio.token_price(s) for s in symbols))

    prices = asyncio.run(agent())
    assert all(isinstance(p, float) and p > 0 for p in prices)
    assert isinstance(pd.Series(prices).sum(), float)
