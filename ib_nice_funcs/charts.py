"""Candle charts of OHLCV frames, with journal fills marked: HTML (plotly) and PNG (mplfinance).

plotly ships its JavaScript inside its Python package, so an HTML chart (and
the dashboard) works with no network; mplfinance draws PNGs on matplotlib.
Both come with the ``dashboard`` extra and are imported only when a chart is
drawn.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import plotly.graph_objects as go

__all__ = ["candles_figure", "write_chart", "CHART_SUFFIXES"]

#: File types ``write_chart`` draws.
CHART_SUFFIXES = (".png", ".html")


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"charts need {module.split('.')[0]}: pip install 'ib_nice_funcs[dashboard]'"
        ) from None


def _fill_points(fills: Iterable[Mapping[str, Any]]) -> dict[str, tuple[list[Any], list[float],
                                                                          list[str]]]:
    """Fills split by side: (times, prices, hover texts)."""
    import pandas as pd

    points: dict[str, tuple[list[Any], list[float], list[str]]] = {
        "BUY": ([], [], []), "SELL": ([], [], [])}
    for f in fills:
        side = str(f.get("side") or "").upper()
        when = f.get("fill_time") or f.get("ts")
        if side not in points or when is None or not f.get("price"):
            continue
        times, prices, texts = points[side]
        times.append(pd.Timestamp(float(when), unit="s", tz="UTC"))
        prices.append(float(f["price"]))
        slip = f.get("slippage_bps")
        texts.append(f"{side} {f.get('quantity', 0):g} @ {float(f['price']):,.4g}"
                     f" ({f.get('agent') or '?'})"
                     + ("" if slip is None else f", slippage {float(slip):+.1f} bps"))
    return points


def candles_figure(frame: pd.DataFrame, symbol: str,
                   fills: Iterable[Mapping[str, Any]] = ()) -> go.Figure:
    """Candles and volume of an OHLCV frame (``timestamp open high low close volume``),
    with ``fills`` (journal rows: side, price, fill_time) as buy/sell markers.

    Raises:
        ImportError: plotly is not installed (names the extra).
    """
    go = _require("plotly.graph_objects")
    subplots = _require("plotly.subplots")
    fig = subplots.make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.75, 0.25],
                                 vertical_spacing=0.03)
    fig.add_trace(go.Candlestick(x=frame["timestamp"], open=frame["open"], high=frame["high"],
                                 low=frame["low"], close=frame["close"], name=symbol), 1, 1)
    fig.add_trace(go.Bar(x=frame["timestamp"], y=frame["volume"], name="volume",
                         marker_color="#8a9bb0"), 2, 1)
    for side, (times, prices, texts) in _fill_points(fills).items():
        if times:
            buy = side == "BUY"
            fig.add_trace(go.Scatter(
                x=times, y=prices, mode="markers", name=f"{side.lower()} fills", text=texts,
                hoverinfo="text", marker={"symbol": "triangle-up" if buy else "triangle-down",
                                          "size": 12, "color": "#1a9850" if buy else "#d73027",
                                          "line": {"width": 1, "color": "#222"}}), 1, 1)
    fig.update_layout(title=f"{symbol} (times UTC)", xaxis_rangeslider_visible=False,
                      margin={"l": 50, "r": 20, "t": 40, "b": 30}, height=460,
                      legend={"orientation": "h"})
    return fig


def write_chart(frame: pd.DataFrame, path: str | Path, symbol: str,
                fills: Iterable[Mapping[str, Any]] = ()) -> Path:
    """Draw ``frame`` to ``path``: ``.html`` (plotly, its JavaScript inline, works offline)
    or ``.png`` (mplfinance); ``fills`` are marked in both. Returns the path written.

    Raises:
        ValueError: another suffix, or an empty frame.
        ImportError: the charting library is missing (names the extra).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CHART_SUFFIXES:
        raise ValueError(f"--plot {path}: use a .png or .html file name")
    if frame.empty:
        raise ValueError(f"no bars of {symbol} to draw")
    if suffix == ".html":
        candles_figure(frame, symbol, fills).write_html(str(path), include_plotlyjs=True)
        return path
    matplotlib = _require("matplotlib")
    matplotlib.use("Agg")  # files only: no display needed
    mpf = _require("mplfinance")
    bars = frame.set_index("timestamp")[["open", "high", "low", "close", "volume"]]
    bars.columns = ["Open", "High", "Low", "Close", "Volume"]
    bars.index = bars.index.tz_convert("UTC").tz_localize(None)
    marks = []
    for side, (times, prices, _) in _fill_points(fills).items():
        series = _on_bars(bars.index, times, prices)
        if series is not None:
            buy = side == "BUY"
            marks.append(mpf.make_addplot(series, type="scatter", markersize=90,
                                          marker="^" if buy else "v",
                                          color="#1a9850" if buy else "#d73027"))
    extra = {"addplot": marks} if marks else {}
    mpf.plot(bars, type="candle", volume=True, style="yahoo", title=f"{symbol} (UTC)",
             savefig={"fname": str(path), "dpi": 110, "bbox_inches": "tight"}, **extra)
    return path


def _on_bars(index: Any, times: list[Any], prices: list[float]) -> Any:
    """Fill prices placed on the bar each fill falls in (NaN elsewhere); None if none falls in."""
    import numpy as np
    import pandas as pd

    values = np.full(len(index), np.nan)
    # The last bar spans one bar's width; later fills are off the chart.
    width = (index[-1] - index[-2]) if len(index) > 1 else pd.Timedelta(0)
    for when, price in zip(times, prices, strict=True):
        stamp = pd.Timestamp(when).tz_convert("UTC").tz_localize(None)
        at = index.searchsorted(stamp, side="right") - 1
        if 0 <= at < len(index) and stamp <= index[-1] + width:
            values[at] = price
    return None if np.isnan(values).all() else pd.Series(values, index=index)
