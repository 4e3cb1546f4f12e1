"""The Moon Dev agents' data calls against the simulator.

``n.get_data(token, 0.33, '15m')`` (risk agent), the collector's
``hl.get_data(symbol=..., timeframe=..., bars=N, add_indicators=True)`` in
ASTER / HYPERLIQUID mode, and the agents' timeframes ``6H 8H 12H 3D 1M``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ib_nice_funcs as n
from ib_nice_funcs import hyperliquid as hl
from ib_nice_funcs.frames import CLASSIC_COLUMNS
from ib_nice_funcs.perp_frames import HL_INDICATOR_COLUMNS


def test_a_short_window_is_padded_so_ma40_and_its_flags_exist(use_sim):
    frame = n.get_data("BTC-USD", 0.33, "15m")  # ~31 bars of 15 minutes
    assert list(frame.columns) == list(CLASSIC_COLUMNS)
    assert len(frame) == 40
    last = frame.iloc[-1]
    assert np.isfinite(last["MA40"]) and np.isfinite(last["RSI"])
    assert bool(last["Price_above_MA40"]) == (last["Close"] > last["MA40"])
    assert frame["Datetime (UTC)"].str.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$").all()


@pytest.mark.parametrize(("timeframe", "base", "hours"), [
    ("6H", "2h", 6), ("8H", "4h", 8), ("12H", "4h", 12), ("3D", "1d", 72),
])
def test_the_agents_other_timeframes_are_resampled_from_native_bars(use_sim, timeframe, base,
                                                                    hours):
    coarse = n.get_ohlcv_data("BTC-USD", timeframe, 20)
    fine = n.get_ohlcv_data("BTC-USD", base, 20)
    assert len(coarse) > 3
    steps = coarse["timestamp"].diff().dropna()
    assert (steps == pd.Timedelta(hours=hours)).all()
    start = coarse["timestamp"].iloc[-2]
    inside = fine[(fine["timestamp"] >= start)
                  & (fine["timestamp"] < start + pd.Timedelta(hours=hours))]
    row = coarse.iloc[-2]
    assert row["high"] == inside["high"].max() and row["low"] == inside["low"].min()
    assert row["open"] == inside["open"].iloc[0] and row["close"] == inside["close"].iloc[-1]
    assert row["volume"] == pytest.approx(inside["volume"].sum())


def test_one_capital_m_is_monthly_bars(use_sim):
    frame = n.get_ohlcv_data("BTC-USD", "1M", 90)
    assert len(frame) >= 3
    assert (frame["timestamp"].dt.day == 1).all() and (frame["timestamp"].dt.hour == 0).all()
    assert len(n.get_data("BTC-USD", 90, "1M")) == 40  # padded like any short window


def test_get_data_takes_the_hyperliquid_keyword_form(use_sim):
    frame = n.get_data(symbol="BTC-USD", timeframe="15m", bars=50, add_indicators=True)
    assert len(frame) == 50 and list(frame.columns) == list(CLASSIC_COLUMNS)
    bare = n.get_data(symbol="BTC-USD", timeframe="1H", bars=10, add_indicators=False)
    assert list(bare.columns) == list(CLASSIC_COLUMNS[:6]) and len(bare) == 10
    with pytest.raises(ValueError):
        n.get_data("BTC-USD", 1, "15m", bars=10)
    with pytest.raises(ValueError):
        n.get_data("BTC-USD", timeframe="15m", bars=0)


@pytest.mark.parametrize("timeframe", ["15m", "1h", "4h", "6h", "12h", "1d", "3d", "1w", "1month"])
def test_hyperliquid_get_data_as_the_collector_calls_it(use_sim, timeframe):
    bars = 5
    frame = hl.get_data(symbol="BTC", timeframe=timeframe, bars=bars, add_indicators=True)
    assert list(frame.columns) == ["timestamp", "open", "high", "low", "close", "volume",
                                   *HL_INDICATOR_COLUMNS]
    assert 1 <= len(frame) <= bars and frame["timestamp"].dt.tz is None
    assert frame["close"].dtype == "float64"


def test_hyperliquid_get_data_indicators_on_a_long_window(use_sim):
    frame = hl.get_data("ETH", "1h", 72)
    assert len(frame) == 72
    assert frame["sma_50"].notna().sum() == 23 and frame["MACDs_12_26_9"].notna().any()
    assert frame["BBU_5_2.0"].iloc[-1] >= frame["BBL_5_2.0"].iloc[-1]


def test_unknown_timeframes_still_raise(use_sim):
    for bad in ("7H", "2M", "1y"):
        with pytest.raises(ValueError):
            n.get_data("BTC-USD", 1, bad)
        with pytest.raises(ValueError):
            hl.get_data("BTC", bad, 10)
