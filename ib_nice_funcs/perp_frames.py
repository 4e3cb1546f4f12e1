"""HyperLiquid-shaped bar frames: lowercase OHLCV plus the indicators its ``get_data`` adds.

Pure functions on pandas / numpy (no I/O). The indicator columns and their
definitions are pandas_ta's defaults, as ``nice_funcs_hyperliquid.get_data``
asks for them: ``sma_20``, ``sma_50``, ``rsi`` (14, Wilder), MACD 12/26/9
(``MACD_12_26_9``, ``MACDh_12_26_9``, ``MACDs_12_26_9``; EMAs seeded with
the SMA of their first window) and Bollinger Bands 5 / 2.0 (``BBL_5_2.0``,
``BBM_5_2.0``, ``BBU_5_2.0``, ``BBB_5_2.0`` bandwidth in percent,
``BBP_5_2.0`` %B; population standard deviation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .frames import normalize_ohlcv, rsi_wilder, sma

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

__all__ = ["HL_INDICATOR_COLUMNS", "bollinger", "ema", "hyperliquid_frame", "macd"]

HL_INDICATOR_COLUMNS: tuple[str, ...] = (
    "sma_20", "sma_50", "rsi",
    "MACD_12_26_9", "MACDh_12_26_9", "MACDs_12_26_9",
    "BBL_5_2.0", "BBM_5_2.0", "BBU_5_2.0", "BBB_5_2.0", "BBP_5_2.0",
)  # fmt: skip


def ema(values: np.ndarray, n: int) -> np.ndarray:
    """Exponential moving average (alpha 2/(n+1)) seeded with the SMA of the
    first ``n`` valid values.

    Leading NaNs are skipped; the result is NaN until the seed.
    """
    import numpy as np

    x = np.asarray(values, dtype="float64")
    out = np.full(x.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(x))
    if len(valid) < n:
        return out
    first = int(valid[0])
    seed_at = first + n - 1
    alpha = 2.0 / (n + 1.0)
    prev = float(x[first : seed_at + 1].mean())
    out[seed_at] = prev
    # Sequential by nature; agent frames are a few thousand rows at most.
    for i in range(seed_at + 1, len(x)):
        prev = alpha * x[i] + (1.0 - alpha) * prev
        out[i] = prev
    return out


def macd(close: np.ndarray, fast: int = 12, slow: int = 26,
         signal: int = 9) -> tuple[np.ndarray, ...]:
    """(macd, histogram, signal) as pandas_ta computes them."""
    line = ema(close, fast) - ema(close, slow)
    sig = ema(line, signal)
    return line, line - sig, sig


def bollinger(close: np.ndarray, n: int = 5, k: float = 2.0) -> tuple[np.ndarray, ...]:
    """(lower, mid, upper, bandwidth %, %B) with the population standard deviation."""
    import numpy as np

    x = np.asarray(close, dtype="float64")
    mid = sma(x, n)
    std = np.full(x.shape, np.nan)
    if len(x) >= n:
        std[n - 1 :] = np.lib.stride_tricks.sliding_window_view(x, n).std(axis=1)
    lower, upper = mid - k * std, mid + k * std
    with np.errstate(invalid="ignore", divide="ignore"):
        width = 100.0 * (upper - lower) / mid
        percent = (x - lower) / (upper - lower)
    return lower, mid, upper, width, percent


def hyperliquid_frame(ohlcv: pd.DataFrame, add_indicators: bool = True) -> pd.DataFrame:
    """HyperLiquid's ``get_data`` frame from an OHLCV frame.

    Returns:
        Columns ``timestamp`` (naive UTC, as HyperLiquid's module builds it),
        ``open high low close volume`` (float64) and, with
        ``add_indicators``, :data:`HL_INDICATOR_COLUMNS`. An empty input
        gives an empty frame with no columns (the original's failure value).
    """
    import pandas as pd

    src = normalize_ohlcv(ohlcv)
    if src.empty:
        return pd.DataFrame()
    out = src.copy()
    out["timestamp"] = out["timestamp"].dt.tz_convert("UTC").dt.tz_localize(None)
    if not add_indicators:
        return out
    close = out["close"].to_numpy()
    line, hist, sig = macd(close)
    lower, mid, upper, width, percent = bollinger(close)
    columns = (sma(close, 20), sma(close, 50), rsi_wilder(close, 14), line, hist, sig,
               lower, mid, upper, width, percent)
    for name, values in zip(HL_INDICATOR_COLUMNS, columns, strict=False):
        out[name] = values
    return out
