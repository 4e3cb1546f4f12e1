"""The HyperLiquid frame's indicators and the classic frame's padding (pure, no I/O)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ib_nice_funcs.frames import CLASSIC_MIN_ROWS, classic_frame
from ib_nice_funcs.perp_frames import HL_INDICATOR_COLUMNS, bollinger, ema, hyperliquid_frame, macd

closes = st.lists(st.floats(1.0, 1e5, allow_nan=False), min_size=0, max_size=120)


def ohlcv(close: list[float]) -> pd.DataFrame:
    ts = pd.date_range("2026-01-05", periods=len(close), freq="15min", tz="UTC")
    c = np.asarray(close, dtype="float64")
    return pd.DataFrame({"timestamp": ts, "open": c, "high": c * 1.01, "low": c * 0.99,
                         "close": c, "volume": np.ones(len(c))})


def reference_ema(x: np.ndarray, n: int) -> np.ndarray:
    """pandas_ta's definition: the first value is the SMA of the first n, then ewm(adjust=False)."""
    s = pd.Series(x, dtype="float64")
    first = s.first_valid_index()
    out = pd.Series(np.nan, index=s.index)
    if first is None or s.notna().sum() < n:
        return out.to_numpy()
    seeded = s.copy()
    seeded.iloc[: first + n - 1] = np.nan
    seeded.iloc[first + n - 1] = s.iloc[first : first + n].mean()
    return seeded.ewm(span=n, adjust=False).mean().to_numpy()


@settings(max_examples=60, deadline=None)
@given(closes)
def test_ema_and_macd_follow_pandas_ta_definitions(close):
    x = np.asarray(close, dtype="float64")
    np.testing.assert_allclose(ema(x, 12), reference_ema(x, 12), rtol=1e-12, equal_nan=True)
    line, hist, sig = macd(x)
    np.testing.assert_allclose(line, reference_ema(x, 12) - reference_ema(x, 26), rtol=1e-9,
                               atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(sig, reference_ema(line, 9), rtol=1e-9, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(hist, line - sig, equal_nan=True)


@settings(max_examples=60, deadline=None)
@given(closes)
def test_bollinger_uses_the_population_deviation(close):
    x = pd.Series(close, dtype="float64")
    lower, mid, upper, width, percent = bollinger(x.to_numpy())
    std = x.rolling(5).std(ddof=0).to_numpy()
    np.testing.assert_allclose(mid, x.rolling(5).mean().to_numpy(), rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(upper - lower, 4 * std, rtol=1e-9, atol=1e-6, equal_nan=True)
    ok = ~np.isnan(mid)
    assert np.all(width[ok] >= 0)


def test_hyperliquid_frame_has_the_original_columns_and_naive_utc_times():
    frame = hyperliquid_frame(ohlcv([100.0 + i % 7 for i in range(80)]))
    assert list(frame.columns) == ["timestamp", "open", "high", "low", "close", "volume",
                                   *HL_INDICATOR_COLUMNS]
    assert frame["timestamp"].dt.tz is None
    assert frame["sma_50"].notna().sum() == 31 and np.isfinite(frame["rsi"].iloc[-1])
    bare = hyperliquid_frame(ohlcv([1.0, 2.0]), add_indicators=False)
    assert list(bare.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
    assert hyperliquid_frame(ohlcv([])).empty


@pytest.mark.parametrize("rows", [1, 31, 39])
def test_a_short_window_is_padded_to_forty_rows_by_repeating_the_first_bar(rows):
    close = [100.0 + i for i in range(rows)]
    frame = classic_frame(ohlcv(close), CLASSIC_MIN_ROWS)
    assert len(frame) == CLASSIC_MIN_ROWS
    filler = frame.iloc[: CLASSIC_MIN_ROWS - rows]
    assert (filler["Close"] == close[0]).all()
    assert (filler["Datetime (UTC)"] == frame["Datetime (UTC)"].iloc[CLASSIC_MIN_ROWS - rows]).all()
    assert frame["Close"].tolist()[-rows:] == close
    last = frame.iloc[-1]
    assert np.isfinite(last["MA40"]) and last["MA40"] == pytest.approx(np.mean(frame["Close"]))


def test_a_long_window_is_not_padded():
    assert len(classic_frame(ohlcv([1.0] * 50), CLASSIC_MIN_ROWS)) == 50
    assert len(classic_frame(ohlcv([1.0] * 5))) == 5  # the default pads nothing
