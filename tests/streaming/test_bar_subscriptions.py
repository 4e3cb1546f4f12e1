"""Kept-up-to-date bars: polling agents send one historical request per symbol.

Each test has a simulator of its own: historical requests count against IB's
60-per-10-minutes budget, which the session simulator shares with every test.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pandas as pd

import ib_nice_funcs as n
from ib_nice_funcs.frames import OHLCV_COLUMNS
from ib_nice_funcs.symbols import parse_symbol
from ib_nice_funcs.timeframes import days_back_range, parse_timeframe

TWENTY = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "TSLA", "META", "SPY", "QQQ", "IBM", "JPM",
          "BRK.B", "EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCAD", "USDCHF", "BTC-USD", "ETH-USD"]


class _Clock:
    """A monotonic clock the test moves: 60 s per poll."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_polling_20_symbols_for_30_minutes_sends_one_request_each(fresh_sim, make_client):
    """The agent of the issue: 20 symbols' 15-minute bars every 60 s, for 30 minutes.

    The simulator enforces IB's pacing (60 requests / 10 min, no identical
    request within 15 s, 6 per contract in 2 s). Time is compressed: the
    subscriptions' clock moves 60 s per poll, and the client's 15-second bar
    cache is emptied between polls as it would have expired by then.
    """
    assert fresh_sim.sim.enforce_pacing
    client = make_client(fresh_sim)
    clock = _Clock()
    client._source("ib").barsubs.clock = clock
    before = fresh_sim.request_counts().get("reqHistoricalData", 0)
    frames: dict[str, pd.DataFrame] = {}
    for _ in range(30):
        for symbol in TWENTY:
            frames[symbol] = client.ohlcv(symbol, "15m", 3)
        client._bars.clear()
        clock.now += 60.0
    client.server_time()  # the simulator has read everything we sent
    sent = fresh_sim.request_counts().get("reqHistoricalData", 0) - before
    assert sent == 20
    for symbol, frame in frames.items():
        assert list(frame.columns) == list(OHLCV_COLUMNS) and len(frame) > 10, symbol
        assert frame.attrs["source"] == "ib"
    assert len(client._source("ib").barsubs) == 20


def test_bars_from_a_subscription_match_a_plain_request(fresh_sim, make_client):
    client = make_client(fresh_sim)
    live = client.ohlcv("BTC-USD", "1h", 2)
    source = client._source("ib")
    instrument = parse_symbol("BTC-USD")
    tf = parse_timeframe("1h")
    start, end = days_back_range(2, now=_market_now(fresh_sim))

    async def plain():
        (contract,) = await source.gateway.qualify([instrument], "test")
        frame, _ = await source.fetch_plain(instrument, contract, tf, start, end, "test")
        return frame

    reference = client.gateway.call(plain, 15, "plain bars")
    merged = live.merge(reference, on="timestamp", suffixes=("", "_ref"))
    assert len(merged) >= len(live) - 1
    done = merged.iloc[:-1]  # the forming bar moves
    for col in ("open", "high", "low", "close"):
        assert (done[col] == done[f"{col}_ref"]).all(), col


def test_a_longer_range_fetches_only_the_older_part(fresh_sim, make_client):
    client = make_client(fresh_sim)
    barsubs = client._source("ib").barsubs
    client.ohlcv("LTC-USD", "15m", 1)
    assert barsubs.requests_sent == 1
    client._bars.clear()
    frame = client.ohlcv("LTC-USD", "15m", 10)  # 10 days: the older 9 days once
    older = barsubs.requests_sent - 1
    assert older >= 1
    gaps = frame["timestamp"].diff().dropna().unique()
    assert list(gaps) == [pd.Timedelta(minutes=15)]
    assert abs(len(frame) - 10 * 96) <= 1
    client._bars.clear()
    client.ohlcv("LTC-USD", "15m", 10)
    client.ohlcv("LTC-USD", "15m", 4)
    assert barsubs.requests_sent == 1 + older


def test_get_data_is_served_from_the_same_subscription(fresh_sim, new_client_id):
    n.configure(host="127.0.0.1", port=fresh_sim.port, client_id=new_client_id(), sources="ib",
                clock=fresh_sim.market.clock)
    barsubs = n.default_client()._source("ib").barsubs
    first = n.get_data("ETH-USD", 2, "1h")
    second = n.get_ohlcv_data("ETH-USD", "1h", 1)
    assert not first.empty and not second.empty
    assert barsubs.requests_sent == 1


def test_a_subscription_is_reopened_after_a_reconnect(fresh_sim, make_client):
    client = make_client(fresh_sim)
    barsubs = client._source("ib").barsubs
    client.ohlcv("BTC-USD", "5m", 0.5)
    reconnected = threading.Event()

    async def hook(ib):
        reconnected.set()

    client.gateway.on_connected.append(hook)
    fresh_sim.drop_connections()
    assert reconnected.wait(15)
    client._bars.clear()
    frame = client.ohlcv("BTC-USD", "5m", 0.5)  # within 15 s: must dodge "identical request"
    assert not frame.empty
    assert barsubs.requests_sent == 2


def test_idle_subscriptions_are_cancelled(fresh_sim, make_client):
    client = make_client(fresh_sim)
    barsubs = client._source("ib").barsubs
    clock = _Clock()
    barsubs.clock = clock
    client.ohlcv("BCH-USD", "30m", 1)
    assert len(barsubs) == 1
    cancels = fresh_sim.request_counts().get("cancelHistoricalData", 0)
    clock.now += barsubs.idle_after + 1
    client._bars.clear()
    client.ohlcv("ETH-USD", "30m", 1)  # any call sweeps the idle ones
    assert len(barsubs) == 1
    client.server_time()
    assert fresh_sim.request_counts().get("cancelHistoricalData", 0) == cancels + 1


def test_a_range_in_the_past_uses_plain_requests(fresh_sim, make_client):
    client = make_client(fresh_sim)
    source = client._source("ib")
    start, end = days_back_range(1, now=_market_now(fresh_sim))
    frame = source.bars(parse_symbol("BTC-USD"), parse_timeframe("1h"),
                        start - timedelta(days=3), end - timedelta(days=3), timeout=15)
    assert abs(len(frame) - 24) <= 1
    assert len(source.barsubs) == 0


def _market_now(sim):
    """The simulator's market time (the client fixtures share its clock)."""
    return datetime.fromtimestamp(sim.market.now(), timezone.utc)
