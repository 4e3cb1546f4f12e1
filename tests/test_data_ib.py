"""The data path end to end: real code against the paper TWS simulator over loopback."""

from __future__ import annotations

import asyncio
import math
import threading
from datetime import timezone

import numpy as np
import pandas as pd
import pytest

import ib_nice_funcs as n
from ib_nice_funcs import Client
from ib_nice_funcs.errors import UnknownSymbolError
from ib_nice_funcs.frames import CLASSIC_COLUMNS, OHLCV_COLUMNS


def assert_ohlcv(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == list(OHLCV_COLUMNS)
    assert isinstance(frame.index, pd.RangeIndex)
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert frame["timestamp"].is_monotonic_increasing and frame["timestamp"].is_unique
    assert (frame["low"] <= frame[["open", "close"]].min(axis=1)).all()
    assert (frame["high"] >= frame[["open", "close"]].max(axis=1)).all()
    assert (frame["volume"] >= 0).all()


# -- prices ---------------------------------------------------------------------


@pytest.mark.parametrize("symbol", ["AAPL", "msft", "EURUSD", "EUR/USD", "USDJPY=X", "BTC-USD",
                                    "ETHUSDT"])
def test_price_of_each_asset_class(client, symbol):
    price = client.price(symbol)
    assert isinstance(price, float) and math.isfinite(price) and price > 0


def test_price_of_a_contract(client):
    from ib_async import Stock

    assert client.price(Stock("IBM", "SMART", "USD")) > 0


def test_prices_of_many_symbols_at_once(client):
    symbols = ["AAPL", "MSFT", "EURUSD", "BTC-USD", "ZZZZ"]
    prices = client.prices(symbols)
    assert list(prices) == symbols
    assert all(prices[s] > 0 for s in symbols[:-1])
    assert prices["ZZZZ"] is None


def test_fx_price_is_in_a_sane_range(client):
    assert 0.5 < client.price("EURUSD") < 2.0
    assert 50 < client.price("USDJPY") < 300


def test_unknown_symbol_raises_on_client_and_warns_at_module_level(client, use_sim, warnings_log):
    with pytest.raises(UnknownSymbolError, match="ZZZZ"):
        client.price("ZZZZ")
    assert n.token_price("ZZZZ") is None
    records = [r for r in warnings_log.records if r.levelname == "WARNING"]
    assert len(records) == 1
    assert "ZZZZ" in records[0].getMessage() and "symbol" in records[0].getMessage()


def test_module_level_token_price(use_sim):
    assert n.token_price("AAPL") > 0
    got = n.token_prices(["AAPL", "BTC-USD"])
    assert set(got) == {"AAPL", "BTC-USD"} and all(v > 0 for v in got.values())


# -- bars -----------------------------------------------------------------------


@pytest.mark.parametrize(("timeframe", "days", "per_day"),
                         [("1h", 1, 24), ("15m", 0.5, 96), ("1D", 10, 1), ("4H", 3, 6)])
def test_crypto_bar_counts_follow_days_back(client, timeframe, days, per_day):
    frame = client.ohlcv("BTC-USD", timeframe, days)
    assert_ohlcv(frame)
    assert frame.attrs["source"] == "ib"
    expected = days * per_day
    assert abs(len(frame) - expected) <= 1, (len(frame), expected)
    span = frame["timestamp"].iloc[-1] - frame["timestamp"].iloc[0]
    assert span <= pd.Timedelta(days=days)


def test_fractional_days_back(client):
    frame = client.ohlcv("ETH-USD", "5m", 0.33)
    assert abs(len(frame) - 0.33 * 288) <= 1.5


def test_stock_bars_only_in_sessions(client):
    frame = client.ohlcv("AAPL", "1h", 7)
    assert_ohlcv(frame)
    weekdays = frame["timestamp"].dt.tz_convert("America/New_York").dt.day_of_week
    assert (weekdays < 5).all()


def test_long_range_is_chunked_without_pacing_errors(client, sim):
    # 20 days of 5-minute bars needs several requests; the simulator enforces pacing.
    frame = client.ohlcv("BTC-USD", "5m", 20)
    assert_ohlcv(frame)
    assert abs(len(frame) - 20 * 288) <= 1
    gaps = frame["timestamp"].diff().dropna().unique()
    assert list(gaps) == [pd.Timedelta(minutes=5)]


def test_get_data_columns_and_indicators(use_sim):
    frame = n.get_data("BTC-USD", 3, "1H")
    assert list(frame.columns) == list(CLASSIC_COLUMNS)
    assert isinstance(frame.index, pd.RangeIndex)
    assert frame["Datetime (UTC)"].str.match(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$").all()
    close = frame["Close"].to_numpy()
    # Independent computation: plain loops.
    for k in range(len(close)):
        ma20 = sum(close[k - 19 : k + 1]) / 20 if k >= 19 else math.nan
        got = frame["MA20"].iloc[k]
        assert (math.isnan(ma20) and math.isnan(got)) or got == pytest.approx(ma20)
    gains = [max(b - a, 0) for a, b in zip(close, close[1:], strict=False)]
    losses = [max(a - b, 0) for a, b in zip(close, close[1:], strict=False)]
    avg_gain, avg_loss = sum(gains[:14]) / 14, sum(losses[:14]) / 14
    for k in range(14, len(gains)):
        avg_gain = (avg_gain * 13 + gains[k]) / 14
        avg_loss = (avg_loss * 13 + losses[k]) / 14
    rsi = 100.0 if avg_loss == 0 else 100 - 100 / (1 + avg_gain / avg_loss)
    assert frame["RSI"].iloc[-1] == pytest.approx(rsi)
    last = frame.iloc[-1]
    assert bool(last["Price_above_MA20"]) == bool(last["Close"] > last["MA20"])
    assert bool(last["MA20_above_MA40"]) == bool(last["MA20"] > last["MA40"])


def test_get_data_accepts_days_back_keyword(use_sim):
    frame = n.get_data("ETH-USD", days_back=1, timeframe="1h")
    # ~24 hourly bars, padded to 40 rows (the first bar repeated) like the original.
    assert len(frame) == 40
    assert abs(frame["Datetime (UTC)"].nunique() - 24) <= 1


def test_invalid_timeframe_is_a_value_error_before_anything_is_sent(use_sim):
    before = dict(use_sim.request_counts())
    with pytest.raises(ValueError, match="1m.*1h"):
        n.get_ohlcv_data("AAPL", "7x", 1)
    with pytest.raises(ValueError):
        n.get_ohlcv_data("AAPL", "1h", -1)
    # Symbol text that names nothing is the failure value, not an error (agents
    # call these without try); nothing is sent either way.
    assert n.token_price("") is None
    assert dict(use_sim.request_counts()) == before


def test_unknown_symbol_bars_give_an_empty_frame(use_sim, warnings_log):
    frame = n.get_ohlcv_data("ZZZZ", "1h", 1)
    assert frame.empty and list(frame.columns) == list(OHLCV_COLUMNS)
    assert "ZZZZ" in warnings_log.text


# -- threads and event loops ------------------------------------------------------


def test_eight_threads_at_once(client):
    symbols = ["AAPL", "MSFT", "EURUSD", "BTC-USD", "GBPUSD", "ETH-USD", "NVDA", "SPY"]
    results: dict[str, float] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(symbols))

    def work(symbol: str) -> None:
        try:
            barrier.wait(5)
            results[symbol] = client.price(symbol)
            client.ohlcv(symbol, "1h", 1)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in symbols]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert set(results) == set(symbols) and all(v > 0 for v in results.values())


def test_call_from_inside_a_running_event_loop(use_sim):
    async def cell():  # what a Jupyter cell looks like: a loop is running
        return n.token_price("AAPL"), n.get_ohlcv_data("BTC-USD", "1h", 1)

    price, frame = asyncio.run(cell())
    assert price > 0 and not frame.empty


# -- faults ---------------------------------------------------------------------


def test_reconnect_after_a_dropped_connection(fresh_sim, new_client_id):
    with Client(host="127.0.0.1", port=fresh_sim.port, client_id=new_client_id(), sources="ib",
                timeout=15) as c:
        assert c.price("AAPL") > 0
        reconnected = threading.Event()

        async def hook(ib):
            reconnected.set()

        c.gateway.on_connected.append(hook)
        fresh_sim.drop_connections()
        assert reconnected.wait(15), "the client did not reconnect by itself"
        c.clear_caches()
        assert c.price("MSFT") > 0


def test_timestamps_are_utc(client):
    frame = client.ohlcv("EURUSD", "1h", 2)
    assert frame["timestamp"].dt.tz == timezone.utc or str(frame["timestamp"].dt.tz) == "UTC"
    assert np.all(np.diff(frame["timestamp"].astype("int64")) > 0)


@pytest.mark.parametrize("timeframe", ["1m", "2m", "3m", "30m", "2h", "1W"])
def test_every_timeframe_reaches_ib(client, timeframe):
    frame = client.ohlcv("LTC-USD", timeframe, 40 if timeframe == "1W" else 0.2)
    assert_ohlcv(frame)
    assert frame.attrs["source"] == "ib" and len(frame) >= 2
    step = frame["timestamp"].diff().dropna().min()
    assert step.total_seconds() >= {
        "1m": 60, "2m": 120, "3m": 180, "30m": 1800, "2h": 7200, "1W": 7 * 86400}[timeframe]


def test_unsubscribed_market_data_falls_back_to_delayed(fresh_sim, new_client_id, warnings_log):
    fresh_sim.set_market_data_subscribed(False)  # live requests now get error 354
    with Client(port=fresh_sim.port, client_id=new_client_id(), sources="ib", timeout=15) as c:
        assert c.price("AAPL") > 0
        assert c.prices(["MSFT", "EURUSD"], strict=True)["EURUSD"] > 0
    delayed = [r for r in warnings_log.records if "delayed" in r.getMessage()]
    assert len(delayed) == 1 and "354" in delayed[0].getMessage()
