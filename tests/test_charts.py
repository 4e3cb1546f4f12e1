"""Charts: ``ohlcv --plot`` to PNG and HTML (offline), and fills marked on candles."""

from __future__ import annotations

import pandas as pd
import pytest

pytest.importorskip("plotly", reason="the dashboard extra is not installed")
pytest.importorskip("mplfinance", reason="the dashboard extra is not installed")

from ib_nice_funcs.charts import candles_figure, write_chart  # noqa: E402
from ib_nice_funcs.cli import main  # noqa: E402

# The CLI's client dates its windows by the simulator's market clock.
pytestmark = pytest.mark.usefixtures("sim_clock")


def _bars(n: int = 30) -> pd.DataFrame:
    stamps = pd.date_range("2026-11-18 14:30", periods=n, freq="5min", tz="UTC")
    close = [100 + i * 0.5 for i in range(n)]
    return pd.DataFrame({"timestamp": stamps, "open": [c - 0.2 for c in close],
                         "high": [c + 0.6 for c in close], "low": [c - 0.7 for c in close],
                         "close": close, "volume": [1000 + i for i in range(n)]})


@pytest.mark.parametrize("suffix", [".png", ".html"])
def test_ohlcv_plot_draws_candles_and_volume(sim, tmp_path, capsys, new_client_id, suffix):
    target = tmp_path / f"bars{suffix}"
    code = main(["ohlcv", "BTC-USD", "-t", "1h", "-d", "1", "--plot", str(target),
                 "--port", str(sim.port), "--client-id", str(new_client_id()), "--source", "ib"])
    assert code == 0, capsys.readouterr().err
    assert f"to {target}" in capsys.readouterr().out
    data = target.read_bytes()
    if suffix == ".png":
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    else:
        text = data.decode()
        assert "candlestick" in text and "volume" in text
        assert 'src="https://' not in text and "cdn.plot.ly" not in text.split("<body>")[0]


def test_a_plot_name_without_png_or_html_is_refused_before_asking(capsys):
    assert main(["ohlcv", "AAPL", "--plot", "bars.jpg"]) == 1
    assert ".png or .html" in capsys.readouterr().err


def test_fills_are_marked_by_side():
    frame = _bars()
    at = frame["timestamp"].iloc[5].timestamp()
    fills = [{"side": "BUY", "price": 102.5, "quantity": 3, "fill_time": at, "agent": "a",
              "slippage_bps": 1.5},
             {"side": "SELL", "price": 108.0, "quantity": 3, "fill_time": at + 1200, "agent": "a"},
             {"side": "SELL", "price": None, "quantity": 1, "fill_time": at}]  # skipped
    fig = candles_figure(frame, "AAPL", fills)
    by_name = {t.name: t for t in fig.data}
    assert set(by_name) == {"AAPL", "volume", "buy fills", "sell fills"}
    assert list(by_name["buy fills"].y) == [102.5] and list(by_name["sell fills"].y) == [108.0]
    assert "slippage +1.5 bps" in by_name["buy fills"].text[0]


def test_an_empty_frame_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no bars of AAPL"):
        write_chart(_bars().iloc[:0], tmp_path / "x.png", "AAPL")


def test_png_marks_fills_that_fall_on_the_bars(tmp_path):
    frame = _bars()
    inside = frame["timestamp"].iloc[10].timestamp() + 60
    fills = [{"side": "BUY", "price": 105.0, "quantity": 1, "fill_time": inside},
             {"side": "SELL", "price": 90.0, "quantity": 1, "fill_time": inside + 10 * 86400}]
    plain = write_chart(frame, tmp_path / "plain.png", "AAPL")
    marked = write_chart(frame, tmp_path / "marked.png", "AAPL", fills)
    assert plain.read_bytes() != marked.read_bytes()
    from ib_nice_funcs.charts import _on_bars

    index = frame["timestamp"].dt.tz_localize(None)
    series = _on_bars(pd.DatetimeIndex(index), [pd.Timestamp(inside, unit="s", tz="UTC")], [105.0])
    assert series.iloc[10] == 105.0 and series.drop(series.index[10]).isna().all()
    later = pd.Timestamp(inside + 10 * 86400, unit="s", tz="UTC")
    assert _on_bars(pd.DatetimeIndex(index), [later], [1.0]) is None  # off the chart
