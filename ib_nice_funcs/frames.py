"""OHLCV frames, the classic nice_funcs ``get_data`` frame, and its indicators.

Two frame shapes leave this package:

* OHLCV (:data:`OHLCV_COLUMNS`): RangeIndex, ``timestamp`` as
  ``datetime64[ns, UTC]``, float64 prices and volume, sorted, one row per
  timestamp. Every source converts to it through this module.
* classic (:data:`CLASSIC_COLUMNS`): what nice_funcs' ``get_data`` returns,
  with ``Datetime (UTC)`` as ``%Y-%m-%d %H:%M:%S`` text, MA20/MA40, RSI(14,
  Wilder) and three bool flags.

pandas and numpy are imported inside the functions (package import time is
benchmarked); the module itself imports only the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta, timezone, tzinfo
from operator import attrgetter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "CLASSIC_COLUMNS",
    "CLASSIC_INDICATOR_COLUMNS",
    "CLASSIC_MIN_ROWS",
    "OHLCV_COLUMNS",
    "bars_to_frame",
    "classic_frame",
    "concat_ohlcv",
    "empty_classic",
    "empty_ohlcv",
    "normalize_ohlcv",
    "resample_ohlcv",
    "rsi_wilder",
    "sma",
    "trim",
]

OHLCV_COLUMNS: tuple[str, ...] = ("timestamp", "open", "high", "low", "close", "volume")
CLASSIC_COLUMNS: tuple[str, ...] = (
    "Datetime (UTC)",
    "Open",
    "High",
    "Low",
    "Close",
    "Volume",
    "MA20",
    "RSI",
    "MA40",
    "Price_above_MA20",
    "Price_above_MA40",
    "MA20_above_MA40",
)
#: The columns ``get_data`` computes (dropped with ``add_indicators=False``).
CLASSIC_INDICATOR_COLUMNS: tuple[str, ...] = CLASSIC_COLUMNS[6:]
#: The classic ``get_data`` pads a shorter window to this many rows (repeating
#: the first bar), so MA40 and its flags exist on the last row.
CLASSIC_MIN_ROWS = 40
_PRICE_COLUMNS = OHLCV_COLUMNS[1:]
_TS_DTYPE = "datetime64[ns, UTC]"
_CLASSIC_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

_US = timedelta(microseconds=1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_US_PER_DAY = 86_400_000_000


def empty_ohlcv() -> pd.DataFrame:
    """An empty OHLCV frame with the right columns and dtypes."""
    import pandas as pd

    data: dict[str, Any] = {"timestamp": pd.Series([], dtype=_TS_DTYPE)}
    for col in _PRICE_COLUMNS:
        data[col] = pd.Series([], dtype="float64")
    return pd.DataFrame(data)


def empty_classic() -> pd.DataFrame:
    """An empty classic ``get_data`` frame with the right columns and dtypes."""
    import pandas as pd

    data: dict[str, Any] = {"Datetime (UTC)": pd.Series([], dtype=str)}
    for col in CLASSIC_COLUMNS[1:9]:
        data[col] = pd.Series([], dtype="float64")
    for col in CLASSIC_COLUMNS[9:]:
        data[col] = pd.Series([], dtype=bool)
    return pd.DataFrame(data)


# --- bars -> frame -------------------------------------------------------------


def bars_to_frame(bars: Iterable[Any]) -> pd.DataFrame:
    """Convert ib_async ``BarData`` objects to an OHLCV frame, fast.

    Reads the ``date, open, high, low, close, volume`` attributes of each bar.
    ``date`` may be a tz-aware datetime (any zone), a naive datetime (taken
    as UTC), a ``datetime.date`` (daily bars: midnight UTC), a
    ``pandas.Timestamp``, epoch seconds, or IB date text. Bar order is kept;
    pass the result through :func:`normalize_ohlcv` to sort and de-duplicate.

    Args:
        bars: The bars (any iterable).

    Returns:
        OHLCV frame: RangeIndex, ``timestamp`` ``datetime64[ns, UTC]``, float64.
    """
    bars = bars if isinstance(bars, list) else list(bars)
    if not bars:
        return empty_ohlcv()
    import numpy as np
    import pandas as pd

    # util.df copies every bar into a tuple and lets pandas infer types; here
    # each column is one C-level pass (map + attrgetter + fromiter) and the
    # dates become one datetime64 column in a single vectorised step.
    n = len(bars)
    data: dict[str, Any] = {"timestamp": _dates_to_utc_index(list(map(attrgetter("date"), bars)))}
    for col in _PRICE_COLUMNS:
        try:
            data[col] = np.fromiter(map(attrgetter(col), bars), dtype="float64", count=n)
        except (TypeError, ValueError):
            # None or text in a field: the slow path turns None into NaN.
            data[col] = pd.to_numeric(
                pd.Series([getattr(b, col) for b in bars], dtype=object), errors="coerce"
            ).to_numpy(dtype="float64")
    return pd.DataFrame(data, copy=False)


_MAX_ABS_US = 9_200_000_000_000_000  # datetime64[ns] ends in 2262


def _dates_to_utc_index(dates: list[Any]) -> pd.DatetimeIndex:
    """A ``datetime64[ns, UTC]`` index for a list of bar dates."""
    import pandas as pd

    d0 = dates[0]
    t0 = type(d0)
    fixed = t0 is datetime and (d0.tzinfo is None or d0.tzinfo.utcoffset(None) is not None)
    if t0 is date or fixed:
        # UTC / fixed-offset / naive / date values: pandas' C converter is the
        # fastest route. Mixed zones or kinds make it raise or fall back to
        # object dtype; then the exact path below decides.
        try:
            idx = pd.DatetimeIndex(dates)
        except (TypeError, ValueError, OverflowError):
            idx = None
        if idx is not None and isinstance(idx.dtype, pd.DatetimeTZDtype):
            return idx.tz_convert("UTC").as_unit("ns")
        if idx is not None and idx.dtype.kind == "M":
            return idx.tz_localize("UTC").as_unit("ns")
    us = _epoch_us(dates)
    if len(us) and (us.max() > _MAX_ABS_US or us.min() < -_MAX_ABS_US):
        raise ValueError("bar dates outside what datetime64[ns] can hold (1677-2262)")
    return pd.DatetimeIndex((us * 1000).view("datetime64[ns]")).tz_localize("UTC")


def _epoch_us(dates: list[Any]) -> np.ndarray:
    """Epoch microseconds (int64) for a list of bar dates, exact, vectorised where possible."""
    import numpy as np

    d0 = dates[0]
    try:
        if type(d0) is datetime:
            tz = d0.tzinfo
            if tz is None or tz.utcoffset(None) is not None:
                # Naive (UTC) or fixed offset: "d - d0" is exact elapsed time,
                # even for aware values in other zones. A naive/aware or
                # date/datetime mix raises TypeError and takes the slow path.
                base = (d0 - (_EPOCH_NAIVE if tz is None else _EPOCH_UTC)) // _US
                deltas = np.array([(d - d0) // _US for d in dates], dtype=np.int64)
                return deltas + base
            if all(type(d) is datetime and d.tzinfo is tz for d in dates):
                return _zoned_epoch_us(dates, tz)
        elif type(d0) is date and all(type(d) is date for d in dates):
            days = np.array([d.toordinal() for d in dates], dtype=np.int64)
            return (days - _EPOCH_ORDINAL) * _US_PER_DAY
    except TypeError:
        pass
    return np.array([_one_epoch_us(d) for d in dates], dtype=np.int64)


def _zoned_epoch_us(dates: list[datetime], tz: tzinfo) -> np.ndarray:
    """Epoch µs for datetimes sharing one DST-aware tzinfo (ib_async's formatDate=1).

    Asking the zone for each bar's UTC offset is the slow part (~1 µs each);
    instead take wall-clock offsets from the first bar (same tzinfo object, so
    Python subtracts wall times) and let pandas localise them in one step.
    Ambiguous or missing wall times (DST changes) are resolved one by one with
    Python's own rules so the result equals ``d.timestamp()``.
    """
    import numpy as np
    import pandas as pd

    d0 = dates[0]
    wall0 = (d0.replace(tzinfo=None) - _EPOCH_NAIVE) // _US
    wall = np.array([(d - d0) // _US for d in dates], dtype=np.int64) + wall0
    try:
        local = pd.DatetimeIndex(wall.view("datetime64[us]")).tz_localize(
            tz, ambiguous="NaT", nonexistent="NaT"
        )
    except Exception:  # a tzinfo pandas cannot use (e.g. a custom class)
        return np.array([_one_epoch_us(d) for d in dates], dtype=np.int64)
    out = local.as_unit("us").asi8.copy()
    bad = np.flatnonzero(local.isna())
    for i in bad:
        out[i] = _one_epoch_us(dates[i])
    return out


def _one_epoch_us(value: Any) -> int:
    """Epoch microseconds for one bar date of any accepted kind."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            return (value.replace(tzinfo=None) - _EPOCH_NAIVE) // _US
        return (value - _EPOCH_UTC) // _US
    if isinstance(value, date):
        return (value.toordinal() - _EPOCH_ORDINAL) * _US_PER_DAY
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"bar date {value!r} is not a finite epoch time")
        return round(value * 1_000_000)
    if isinstance(value, str):
        return _one_epoch_us(_parse_ib_date(value))
    raise TypeError(f"bar date must be a datetime, date or epoch seconds, got {value!r}")


def _parse_ib_date(text: str) -> datetime | date:
    """IB date text: ``20240102``, epoch ``1704200400``, ``20240102-09:30:00``
    (UTC), ``20240102 09:30:00`` (UTC here) or ``20240102 09:30:00 Zone``."""
    s = " ".join(text.split())
    if s.isdigit():
        if len(s) == 8:
            return datetime.strptime(s, "%Y%m%d").date()
        return datetime.fromtimestamp(int(s), timezone.utc)
    parts = s.split(" ")
    if len(parts) == 3:
        from zoneinfo import ZoneInfo

        local = datetime.strptime(f"{parts[0]} {parts[1]}", "%Y%m%d %H:%M:%S")
        return local.replace(tzinfo=ZoneInfo(parts[2]))
    for fmt in ("%Y%m%d-%H:%M:%S", "%Y%m%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(s, fmt)
        except ValueError:
            continue
    return datetime.fromisoformat(s)


# --- frame hygiene ---------------------------------------------------------------


def _utc_series(values: Any) -> pd.Series:
    import pandas as pd

    # utc=True localises naive values as UTC and converts aware ones: exactly
    # this package's rule, and it copes with mixed zones in an object column.
    return pd.to_datetime(values, utc=True).astype(_TS_DTYPE)


def normalize_ohlcv(df: pd.DataFrame) -> pd.DataFrame:
    """Bring any OHLCV-ish frame to the canonical OHLCV shape.

    Keeps only :data:`OHLCV_COLUMNS` (missing price columns become NaN, a
    missing ``volume`` becomes 0), makes ``timestamp`` tz-aware UTC (naive is
    taken as UTC), drops rows without a timestamp, sorts by time and keeps the
    last row of each duplicated timestamp (later chunks carry fresher bars).

    Args:
        df: The frame. ``timestamp`` may also be the index.

    Returns:
        A new frame with a RangeIndex.
    """
    import pandas as pd

    if df is None or len(df) == 0:
        return empty_ohlcv()
    if "timestamp" not in df.columns:
        if not isinstance(df.index, pd.DatetimeIndex):
            raise ValueError(
                f"an OHLCV frame needs a 'timestamp' column or a DatetimeIndex; got columns "
                f"{list(df.columns)}"
            )
        df = df.rename_axis("timestamp").reset_index()
    out = pd.DataFrame({"timestamp": _utc_series(df["timestamp"].reset_index(drop=True))})
    for col in _PRICE_COLUMNS:
        if col in df.columns:
            out[col] = pd.to_numeric(df[col].reset_index(drop=True), errors="coerce").astype(
                "float64"
            )
        else:
            out[col] = 0.0 if col == "volume" else float("nan")
    out = out[out["timestamp"].notna()]
    out = out.sort_values("timestamp", kind="stable")
    out = out.drop_duplicates(subset="timestamp", keep="last")
    return out.reset_index(drop=True)


def concat_ohlcv(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate OHLCV frames (chunks in any order) into one normalised frame.

    On duplicate timestamps the row from the later frame in ``frames`` wins.
    """
    import pandas as pd

    parts = [f for f in frames if f is not None and len(f)]
    if not parts:
        return empty_ohlcv()
    return normalize_ohlcv(pd.concat([normalize_ohlcv(f) for f in parts], ignore_index=True))


def _as_utc_timestamp(value: Any) -> pd.Timestamp:
    import pandas as pd

    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def trim(df: pd.DataFrame, start: Any = None, end: Any = None) -> pd.DataFrame:
    """Rows with ``start <= timestamp < end``; None leaves that side open.

    Args:
        df: OHLCV frame.
        start: Inclusive start (datetime/Timestamp/text; naive means UTC).
        end: Exclusive end.

    Returns:
        A new frame with a RangeIndex.
    """
    mask = None
    ts = df["timestamp"]
    if start is not None:
        mask = ts >= _as_utc_timestamp(start)
    if end is not None:
        m = ts < _as_utc_timestamp(end)
        mask = m if mask is None else mask & m
    out = df if mask is None else df[mask]
    return out.reset_index(drop=True)


def resample_ohlcv(df: pd.DataFrame, rule: str, origin: str = "start_day") -> pd.DataFrame:
    """Resample to a coarser bar size: first open, max high, min low, last close, summed volume.

    Bins are left-closed and labelled by their start, anchored at midnight
    UTC of the first day (pandas' default origin); bins with no source bar are
    dropped rather than filled.

    Args:
        df: OHLCV frame.
        rule: pandas offset alias: ``"3min"``, ``"2h"``, ``"4h"``, ``"1D"``, ``"MS"``.
        origin: pandas' bin anchor; ``"epoch"`` keeps fixed multi-hour bins
            (``72h``) the same whatever the first bar.

    Returns:
        A normalised OHLCV frame.
    """
    src = normalize_ohlcv(df)
    if src.empty:
        return src
    r = src.set_index("timestamp").resample(rule, label="left", closed="left", origin=origin)
    out = r.agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    out = out[r.size() > 0]
    return normalize_ohlcv(out.reset_index())


# --- indicators ------------------------------------------------------------------


def sma(values: Sequence[float] | np.ndarray | pd.Series, n: int) -> np.ndarray:
    """Simple moving average over ``n`` values; NaN until the window is full.

    Args:
        values: The series.
        n: Window length, >= 1.

    Returns:
        float64 array as long as ``values``.
    """
    import numpy as np

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    x = np.asarray(values, dtype="float64")
    out = np.full(x.shape, np.nan)
    if len(x) >= n:
        # Window means rather than a running cumsum: no drift over long series.
        out[n - 1 :] = np.lib.stride_tricks.sliding_window_view(x, n).mean(axis=1)
    return out


def rsi_wilder(close: Sequence[float] | np.ndarray | pd.Series, n: int = 14) -> np.ndarray:
    """Relative Strength Index with Wilder's smoothing.

    The first average gain/loss is the simple mean of the first ``n`` price
    changes (so the first RSI is at index ``n``); after that
    ``avg = (prev * (n - 1) + current) / n``. RSI is 100 when the average loss
    is 0 (including a flat series).

    Args:
        close: Closing prices.
        n: Period, >= 1.

    Returns:
        float64 array as long as ``close``, NaN before index ``n``.
    """
    import numpy as np

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    x = np.asarray(close, dtype="float64")
    out = np.full(x.shape, np.nan)
    if len(x) <= n:
        return out
    change = np.diff(x)
    gains = np.where(change > 0, change, 0.0)
    losses = np.where(change < 0, -change, 0.0)
    avg_gain = float(gains[:n].mean())
    avg_loss = float(losses[:n].mean())
    # The recursion is inherently sequential; a plain loop over floats is the
    # clearest and, at agent frame sizes, fast enough.
    g_list, l_list = gains.tolist(), losses.tolist()
    res = [_rsi(avg_gain, avg_loss)]
    for g, loss in zip(g_list[n:], l_list[n:], strict=True):
        avg_gain = (avg_gain * (n - 1) + g) / n
        avg_loss = (avg_loss * (n - 1) + loss) / n
        res.append(_rsi(avg_gain, avg_loss))
    out[n:] = res
    return out


def _rsi(avg_gain: float, avg_loss: float) -> float:
    if avg_loss == 0:
        return 100.0 if avg_gain == avg_gain else math.nan  # NaN stays NaN
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


def classic_frame(ohlcv: pd.DataFrame, min_rows: int = 0) -> pd.DataFrame:
    """The classic nice_funcs ``get_data`` frame from an OHLCV frame.

    Args:
        ohlcv: OHLCV frame (normalised here first).
        min_rows: Pad a shorter frame to this many rows by repeating its first
            bar in front (the original ``get_data`` does so with 40), before
            the indicators are computed.

    Returns:
        Frame with :data:`CLASSIC_COLUMNS`: ``Datetime (UTC)`` text, OHLCV
        floats, MA20/MA40 (NaN until the window is full), RSI (14, Wilder) and
        the three flags (False where an MA is NaN).
    """
    import numpy as np
    import pandas as pd

    src = normalize_ohlcv(ohlcv)
    if src.empty:
        return empty_classic()
    if len(src) < min_rows:
        filler = src.iloc[[0] * (min_rows - len(src))]
        src = pd.concat([filler, src], ignore_index=True)
    close = src["close"].to_numpy()
    ma20, ma40 = sma(close, 20), sma(close, 40)
    # Comparisons with NaN are False, which is exactly the flag we want there.
    with np.errstate(invalid="ignore"):
        above20, above40, cross = close > ma20, close > ma40, ma20 > ma40
    return pd.DataFrame(
        {
            "Datetime (UTC)": src["timestamp"].dt.strftime(_CLASSIC_TIME_FORMAT).astype(str),
            "Open": src["open"],
            "High": src["high"],
            "Low": src["low"],
            "Close": src["close"],
            "Volume": src["volume"],
            "MA20": ma20,
            "RSI": rsi_wilder(close, 14),
            "MA40": ma40,
            "Price_above_MA20": above20,
            "Price_above_MA40": above40,
            "MA20_above_MA40": cross,
        }
    )
