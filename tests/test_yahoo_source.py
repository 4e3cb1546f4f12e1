"""The yfinance source, with yfinance stubbed at its boundary (``yfinance.Ticker``)."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from ib_nice_funcs.errors import (
    NoDataError,
    RequestTimeoutError,
    SourceUnavailableError,
    UnknownSymbolError,
)
from ib_nice_funcs.frames import OHLCV_COLUMNS
from ib_nice_funcs.sources.yahoo import YahooSource
from ib_nice_funcs.symbols import parse_symbol
from ib_nice_funcs.timeframes import parse_timeframe

UTC = timezone.utc
NY = "America/New_York"
# Friday 8 March 2024, 21:00 UTC (16:00 in New York): after the close.
NOW = datetime(2024, 3, 8, 21, 0, tzinfo=UTC)
STEP = {"1m": "1min", "2m": "2min", "5m": "5min", "15m": "15min", "30m": "30min", "60m": "60min"}


def yahoo_history(start, end, interval):
    """A frame shaped like yfinance's: exchange-local index, capitalised columns."""
    start, end = pd.Timestamp(start).tz_convert(NY), pd.Timestamp(end).tz_convert(NY)
    if interval in ("1d", "1wk"):
        days = pd.date_range(start.normalize(), end, freq="B" if interval == "1d" else "W-MON")
        idx = days[(days >= start.normalize()) & (days < end)]
        name = "Date"
    else:
        stamps = []
        for day in pd.date_range(start.normalize(), end.normalize(), freq="B"):
            session = pd.date_range(
                day + pd.Timedelta(hours=9, minutes=30),
                day + pd.Timedelta(hours=16),
                freq=STEP[interval],
                inclusive="left",
            )
            stamps.extend(s for s in session if start <= s < end)
        idx = pd.DatetimeIndex(stamps)
        name = "Datetime"
    n = len(idx)
    close = 100 + np.arange(n) * 0.1
    frame = pd.DataFrame(
        {
            "Open": close - 0.05,
            "High": close + 0.2,
            "Low": close - 0.2,
            "Close": close,
            "Adj Close": close,
            "Volume": np.full(n, 1000, dtype="int64"),
        },
        index=pd.DatetimeIndex(idx, name=name),
    )
    if n == 0:
        frame.index = pd.DatetimeIndex([], tz=NY, name=name)
    return frame


class FakeTicker:
    """Stands in for yfinance.Ticker; records history() calls."""

    def __init__(
        self,
        ticker,
        calls,
        *,
        last_price=123.45,
        fast_info_error=None,
        history_error=None,
        history_delay=0.0,
        empty=False,
    ):
        self.ticker = ticker
        self._calls = calls
        self._last_price = last_price
        self._fast_info_error = fast_info_error
        self._history_error = history_error
        self._history_delay = history_delay
        self._empty = empty

    @property
    def fast_info(self):
        if self._fast_info_error is not None:
            raise self._fast_info_error
        return {"last_price": self._last_price}

    def history(self, **kwargs):
        self._calls.append((self.ticker, kwargs))
        if self._history_delay:
            time.sleep(self._history_delay)
        if self._history_error is not None:
            raise self._history_error
        if self._empty:
            return pd.DataFrame()
        if "period" in kwargs:
            return yahoo_history(NOW - timedelta(days=7), NOW, "1d")
        return yahoo_history(kwargs["start"], kwargs["end"], kwargs["interval"])


@pytest.fixture
def calls():
    return []


@pytest.fixture
def stub(mocker, calls):
    """Patch yfinance.Ticker; returns a function to set the fake's behaviour."""
    options = {}
    ticker_cls = mocker.patch("yfinance.Ticker")
    ticker_cls.side_effect = lambda t: FakeTicker(t, calls, **options.get(t, options.get("*", {})))

    def configure(ticker="*", **kwargs):
        options[ticker] = kwargs
        return ticker_cls

    configure.mock = ticker_cls
    return configure


@pytest.fixture
def source():
    return YahooSource(now=lambda: NOW)


def _check(df):
    assert tuple(df.columns) == OHLCV_COLUMNS
    assert isinstance(df.index, pd.RangeIndex)
    assert str(df["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert all(df[c].dtype == np.float64 for c in OHLCV_COLUMNS[1:])
    assert df["timestamp"].is_monotonic_increasing and df["timestamp"].is_unique
    assert df.attrs["source"] == "yfinance"


def test_hourly_bars(stub, calls, source):
    stub()
    start = NOW - timedelta(days=3)
    df = source.bars(parse_symbol("aapl"), parse_timeframe("1H"), start, NOW, timeout=5)
    _check(df)
    assert stub.mock.call_args.args == ("AAPL",)
    ((ticker, kwargs),) = calls
    assert kwargs["interval"] == "60m" and kwargs["auto_adjust"] is False
    assert kwargs["start"] == start and kwargs["end"] == NOW
    assert 0 < kwargs["timeout"] <= 5
    # From Tue 5 at 21:00 UTC (after the close): Wed 6, Thu 7 and Fri 8, 7 bars a day.
    assert len(df) == 21
    assert df["timestamp"].iloc[0] == pd.Timestamp("2024-03-06 14:30", tz="UTC")
    assert df["timestamp"].iloc[-1] == pd.Timestamp("2024-03-08 20:30", tz="UTC")


def test_four_hour_bars_are_resampled_from_60m(stub, calls, source):
    stub()
    df = source.bars(parse_symbol("MSFT"), parse_timeframe("4H"), NOW - timedelta(days=1), NOW,
                     timeout=5)  # fmt: skip
    _check(df)
    assert calls[0][1]["interval"] == "60m"
    raw = yahoo_history(NOW - timedelta(days=1), NOW, "60m")
    raw.index = raw.index.tz_convert("UTC")
    # 4h bins from midnight UTC: 12:00 (14:30, 15:30), 16:00 (16:30..19:30), 20:00 (20:30).
    assert [t.hour for t in df["timestamp"]] == [12, 16, 20]
    first = raw[raw.index < pd.Timestamp("2024-03-08 16:00", tz="UTC")]
    assert df["open"].iloc[0] == first["Open"].iloc[0]
    assert df["high"].iloc[0] == first["High"].max()
    assert df["close"].iloc[0] == first["Close"].iloc[-1]
    assert df["volume"].iloc[0] == first["Volume"].sum()
    assert df["volume"].sum() == raw["Volume"].sum()


def test_three_minute_bars_come_from_1m(stub, calls, source):
    stub()
    start = datetime(2024, 3, 8, 14, 31, tzinfo=UTC)
    df = source.bars(parse_symbol("AAPL"), "3m", start, start + timedelta(minutes=30), timeout=5)
    _check(df)
    assert calls[0][1]["interval"] == "1m"
    # The 14:30 bin starts before the range and would be partial: dropped.
    assert df["timestamp"].iloc[0] == pd.Timestamp("2024-03-08 14:33", tz="UTC")
    assert (df["timestamp"].diff().dropna() == pd.Timedelta(minutes=3)).all()


def test_one_minute_requests_are_split_into_7_day_pieces(stub, calls, source):
    stub()
    start = NOW - timedelta(days=20)
    df = source.bars(parse_symbol("AAPL"), "1m", start, NOW, timeout=5)
    _check(df)
    ranges = [(kw["start"], kw["end"]) for _, kw in calls]
    assert len(ranges) == 3
    assert ranges[0][0] == start and ranges[-1][1] == NOW
    for (_, b), (c, _) in zip(ranges, ranges[1:], strict=False):
        assert b == c  # contiguous, oldest first
    assert all(b - a <= timedelta(days=7) for a, b in ranges)


def test_ranges_beyond_yahoo_limits_are_clamped_with_a_warning(stub, calls, source, caplog):
    stub()
    caplog.set_level(logging.WARNING, logger="ib_nice_funcs")
    df = source.bars(parse_symbol("AAPL"), "1m", NOW - timedelta(days=45), NOW, timeout=5)
    _check(df)
    first_start = calls[0][1]["start"]
    assert first_start >= NOW - timedelta(days=30)
    assert first_start <= NOW - timedelta(days=29)
    messages = [r.getMessage() for r in caplog.records]
    assert any("last 30 days" in m and "AAPL" in m for m in messages)
    calls.clear()
    caplog.clear()
    source.bars(parse_symbol("AAPL"), "15m", NOW - timedelta(days=90), NOW, timeout=5)
    assert calls[0][1]["start"] >= NOW - timedelta(days=60)
    assert any("last 60 days" in r.getMessage() for r in caplog.records)


def test_range_entirely_beyond_the_limit_is_no_data(stub, calls, source):
    stub()
    with pytest.raises(NoDataError, match="30 days"):
        source.bars(parse_symbol("AAPL"), "1m", NOW - timedelta(days=60), NOW - timedelta(days=40),
                    timeout=5)  # fmt: skip
    assert calls == []


def test_daily_bars_are_labelled_midnight_utc(stub, calls, source):
    stub()
    df = source.bars(parse_symbol("AAPL"), "1D", NOW - timedelta(days=7), NOW, timeout=5)
    _check(df)
    assert calls[0][1]["interval"] == "1d"
    assert (df["timestamp"].dt.hour == 0).all()
    assert df["timestamp"].iloc[-1] == pd.Timestamp("2024-03-08", tz="UTC")
    # Bars labelled inside [Fri 1 March 21:00, Fri 8 March 21:00): Mon 4 .. Fri 8.
    assert df["timestamp"].iloc[0] == pd.Timestamp("2024-03-04", tz="UTC")
    assert len(df) == 5
    long = source.bars(parse_symbol("AAPL"), "1d", NOW - timedelta(days=3000), NOW, timeout=5)
    assert len(long) > 2000  # no limit on daily history


def test_fx_and_crypto_tickers(stub, calls, source):
    stub()
    source.bars(parse_symbol("EUR/USD"), "1h", NOW - timedelta(days=1), NOW, timeout=5)
    source.bars(parse_symbol("BTCUSDT"), "1h", NOW - timedelta(days=1), NOW, timeout=5)
    assert [c[0] for c in calls] == ["EURUSD=X", "BTC-USD"]


def test_no_yahoo_ticker_is_unknown_symbol(stub, calls, source):
    from ib_async import Future

    fut = parse_symbol(Future("ES", "202412", "CME"))
    with pytest.raises(UnknownSymbolError, match="no ticker"):
        source.bars(fut, "1h", NOW - timedelta(days=1), NOW, timeout=5)
    with pytest.raises(UnknownSymbolError):
        source.prices([fut], timeout=5)
    assert calls == [] and stub.mock.call_count == 0


def test_empty_history_is_no_data(stub, source):
    stub(empty=True)
    with pytest.raises(NoDataError, match="no bars"):
        source.bars(parse_symbol("AAPL"), "1h", NOW - timedelta(days=1), NOW, timeout=5)


def _named(name, base=Exception):
    return type(name, (base,), {})("boom")


@pytest.mark.parametrize(
    "error, expected",
    [
        (_named("YFRateLimitError"), SourceUnavailableError),
        (_named("ReadTimeout", OSError), RequestTimeoutError),
        (_named("YFTzMissingError"), UnknownSymbolError),
        (_named("YFPricesMissingError"), NoDataError),
        (ConnectionError("network down"), SourceUnavailableError),
        (RuntimeError("odd"), SourceUnavailableError),
    ],
)
def test_history_errors_map_to_package_errors(stub, source, error, expected):
    stub(history_error=error)
    with pytest.raises(expected) as err:
        source.bars(parse_symbol("AAPL"), "1h", NOW - timedelta(days=1), NOW, timeout=5)
    assert "AAPL" in str(err.value)


def test_a_hung_call_times_out_promptly(stub, source):
    stub(history_delay=2.0)
    t0 = time.monotonic()
    with pytest.raises(RequestTimeoutError, match="did not answer"):
        source.bars(parse_symbol("AAPL"), "1h", NOW - timedelta(days=1), NOW, timeout=0.2)
    assert time.monotonic() - t0 < 1.0


def test_prices(stub, calls, source):
    stub()
    stub("MSFT", fast_info_error=KeyError("last_price"))  # falls back to history
    stub("EURUSD=X", last_price=None, empty=True)  # nothing anywhere
    from ib_async import Future

    instruments = [parse_symbol(s) for s in ("aapl", "MSFT", "EUR.USD")]
    instruments.append(parse_symbol(Future("ES", "202412", "CME")))
    out = source.prices(instruments, timeout=5)
    assert set(out) == {"AAPL", "MSFT", "EURUSD", "ES"}
    assert out["AAPL"] == 123.45
    last_close = yahoo_history(NOW - timedelta(days=7), NOW, "1d")["Close"].iloc[-1]
    assert out["MSFT"] == pytest.approx(last_close)
    assert out["EURUSD"] is None and out["ES"] is None
    assert {c[0] for c in calls} == {"MSFT", "EURUSD=X"}  # AAPL needed no history


def test_prices_rate_limit_fails_the_batch(stub, source):
    stub(fast_info_error=_named("YFRateLimitError"))
    with pytest.raises(SourceUnavailableError, match="rate-limiting"):
        source.prices([parse_symbol("AAPL")], timeout=5)


def test_prices_time_out(stub, source):
    stub(fast_info_error=None, last_price=None, history_delay=2.0)
    t0 = time.monotonic()
    with pytest.raises(RequestTimeoutError):
        source.prices([parse_symbol("AAPL")], timeout=0.2)
    assert time.monotonic() - t0 < 1.0


def test_prices_run_concurrently(mocker, source):
    inside = []
    peak = []
    lock = threading.Lock()

    class Slow:
        def __init__(self, t):
            self.t = t

        @property
        def fast_info(self):
            with lock:
                inside.append(self.t)
                peak.append(len(inside))
            time.sleep(0.1)
            with lock:
                inside.remove(self.t)
            return {"last_price": 1.0}

    mocker.patch("yfinance.Ticker", side_effect=Slow)
    syms = ["AAPL", "MSFT", "TSLA", "NVDA", "AMZN", "META"]
    t0 = time.monotonic()
    out = source.prices([parse_symbol(s) for s in syms], timeout=5)
    assert out == {s: 1.0 for s in syms}
    assert max(peak) > 1 and time.monotonic() - t0 < 0.5


def test_missing_yfinance_is_source_unavailable(monkeypatch, source):
    monkeypatch.setitem(sys.modules, "yfinance", None)
    with pytest.raises(SourceUnavailableError, match="pip install yfinance"):
        source.bars(parse_symbol("AAPL"), "1h", NOW - timedelta(days=1), NOW, timeout=5)


def test_importing_the_source_does_not_import_yfinance():
    code = (
        "import sys, ib_nice_funcs.sources.yahoo as y; y.YahooSource();"
        "print([m for m in ('yfinance', 'pandas', 'numpy', 'requests') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


class ChattyTicker(FakeTicker):
    """Logs as yfinance and urllib3 do when Yahoo has nothing for a ticker."""

    def history(self, **kwargs):
        logging.getLogger("yfinance").error("$%s: possibly delisted; no price data found",
                                            self.ticker)
        logging.getLogger("urllib3.connectionpool").warning("Retrying (Retry(total=2)) after ...")
        logging.getLogger("peewee").warning("cache database is locked")
        return pd.DataFrame()


def test_third_party_logs_are_quiet_while_yahoo_is_a_fallback(mocker, source, caplog):
    caplog.set_level(logging.INFO)
    levels = {n: logging.getLogger(n).level for n in ("yfinance", "urllib3", "peewee")}
    mocker.patch("yfinance.Ticker",
                 side_effect=lambda t: ChattyTicker(t, [], fast_info_error=KeyError("last_price")))
    with pytest.raises(NoDataError):
        source.bars(parse_symbol("AAPL"), parse_timeframe("1h"), NOW - timedelta(days=1), NOW,
                    timeout=5)
    assert source.prices([parse_symbol("MSFT")], timeout=5) == {"MSFT": None}
    third_party = [r for r in caplog.records if not r.name.startswith("ib_nice_funcs")]
    assert third_party == []
    # The user's own yfinance logging (another thread) and levels are untouched.
    logging.getLogger("yfinance").error("the user's own yfinance call")
    assert "the user's own yfinance call" in caplog.text
    assert levels == {n: logging.getLogger(n).level for n in levels}
