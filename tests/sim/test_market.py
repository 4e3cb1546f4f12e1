"""PaperMarket: determinism, sessions, bar consistency and speed (no I/O)."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ib_nice_funcs.sim import PaperMarket
from ib_nice_funcs.sim.catalog import CATALOG

from .conftest import OPEN_T, WEEKEND_T

ET = "US/Eastern"


def _consistent(b) -> None:
    assert len(b) > 0
    assert np.all(b.low <= np.minimum(b.open, b.close))
    assert np.all(b.high >= np.maximum(b.open, b.close))
    assert np.all(np.diff(b.time) > 0)


def test_catalog_is_complete_and_unique():
    keys = {i.key for i in CATALOG}
    for sym in ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "TSLA", "META", "SPY", "QQQ", "IBM",
                "JPM", "BRK B", "EUR.USD", "GBP.USD", "USD.JPY", "AUD.USD", "USD.CAD",
                "USD.CHF", "BTC", "ETH", "LTC", "BCH"]:
        assert sym in keys
    assert len({i.con_id for i in CATALOG}) == len(CATALOG)
    # Enough instruments for a fleet bench of 50 symbols (issue 11).
    assert len(CATALOG) >= 50
    isins = [dict(i.sec_ids)["ISIN"] for i in CATALOG if i.sec_type == "STK"]
    assert len(set(isins)) == len(isins)
    assert all(len(x) == 12 and x.startswith("US") for x in isins)
    m = PaperMarket()
    assert m.get("eurusd").key == "EUR.USD"
    assert m.get("BRK.B").key == "BRK B"
    with pytest.raises(KeyError):
        m.get("NOPE")


def test_same_seed_same_prices_other_seed_other_prices():
    a, b, c = PaperMarket(seed=3), PaperMarket(seed=3), PaperMarket(seed=4)
    ba = a.bars("AAPL", OPEN_T - 86400 * 5, OPEN_T, 300)
    bb = b.bars("AAPL", OPEN_T - 86400 * 5, OPEN_T, 300)
    bc = c.bars("AAPL", OPEN_T - 86400 * 5, OPEN_T, 300)
    assert np.array_equal(ba.close, bb.close) and np.array_equal(ba.volume, bb.volume)
    assert not np.array_equal(ba.close, bc.close)


def test_any_range_is_computed_independently():
    m = PaperMarket(seed=2)
    long = m.bars("BTC", OPEN_T - 3 * 86400, OPEN_T, 60)
    short = m.bars("BTC", OPEN_T - 3600, OPEN_T, 60)
    tail = {int(t): c for t, c in zip(long.time, long.close, strict=False)}
    for t, c in zip(short.time, short.close, strict=False):
        assert tail[int(t)] == c


@pytest.mark.parametrize("symbol", ["AAPL", "EUR.USD", "USD.JPY", "BTC", "BRK B"])
@pytest.mark.parametrize("secs", [60, 120, 300, 900, 3600, 14400, 28800])
def test_intraday_bars_aggregate_minute_bars(symbol, secs):
    m = PaperMarket(seed=5)
    start, end = OPEN_T - 3 * 86400, OPEN_T
    minute = m.bars(symbol, start - secs, end, 60, use_rth=False)
    big = m.bars(symbol, start, end, secs, use_rth=False)
    _consistent(minute)
    _consistent(big)
    # every big bar equals the aggregation of the minute bars it covers
    for i in range(len(big)):
        lo = big.time[i]
        hi = big.time[i + 1] if i + 1 < len(big) else end
        sel = (minute.time >= lo) & (minute.time < hi)
        assert minute.open[sel][0] == big.open[i]
        assert minute.close[sel][-1] == big.close[i]
        assert minute.high[sel].max() == big.high[i]
        assert minute.low[sel].min() == big.low[i]


def test_second_bars_agree_with_minute_bars():
    m = PaperMarket(seed=1)
    end = OPEN_T - 30  # 10:00:00
    secs = m.bars("AAPL", end - 600, end, 1)
    mins = m.bars("AAPL", end - 600, end, 60)
    _consistent(secs)
    assert len(secs) == 600 and len(mins) == 10
    for i, t in enumerate(mins.time):
        sel = (secs.time >= t) & (secs.time < t + 60)
        assert secs.open[sel][0] == mins.open[i] and secs.close[sel][-1] == mins.close[i]
        assert secs.high[sel].max() == mins.high[i] and secs.low[sel].min() == mins.low[i]


def test_stock_sessions_rth_and_extended():
    m = PaperMarket()
    tz = ZoneInfo(ET)
    start = dt.datetime(2024, 2, 26, 0, 0, tzinfo=tz).timestamp()  # a Monday
    end = dt.datetime(2024, 3, 3, 0, 0, tzinfo=tz).timestamp()  # the Sunday after
    rth = m.bars("AAPL", start, end, 60, use_rth=True)
    ext = m.bars("AAPL", start, end, 60, use_rth=False)
    local = [dt.datetime.fromtimestamp(t, tz) for t in rth.time]
    assert all(dt.time(9, 30) <= x.time() < dt.time(16, 0) for x in local)
    assert all(x.weekday() < 5 for x in local)
    assert len({x.date() for x in local}) == 5
    assert len(rth) == 5 * 390 and len(ext) == 5 * 960


def test_fx_week_and_crypto_always():
    m = PaperMarket()
    assert not m.is_open("EUR.USD", WEEKEND_T)
    assert not m.is_open("AAPL", WEEKEND_T, use_rth=False)
    assert m.is_open("BTC", WEEKEND_T)
    sunday_1730 = dt.datetime(2024, 3, 10, 21, 30, tzinfo=dt.timezone.utc).timestamp()
    sunday_1630 = dt.datetime(2024, 3, 10, 20, 30, tzinfo=dt.timezone.utc).timestamp()
    assert m.is_open("EUR.USD", sunday_1730) and not m.is_open("EUR.USD", sunday_1630)


def test_daily_weekly_monthly_bars():
    m = PaperMarket(seed=9)
    day = m.bars("AAPL", OPEN_T - 365 * 86400, OPEN_T, kind="day")
    week = m.bars("AAPL", OPEN_T - 365 * 86400, OPEN_T, kind="week")
    month = m.bars("AAPL", OPEN_T - 365 * 86400, OPEN_T, kind="month")
    for b in (day, week, month):
        _consistent(b)
        assert b.dates is not None and b.dates == sorted(b.dates)
    assert 255 <= len(day) <= 265 and 52 <= len(week) <= 54 and len(month) in (12, 13)
    assert all(d.weekday() < 5 for d in day.dates)
    # the last daily bar is the current session so far and ends at the live price
    assert day.close[-1] == m.quote("AAPL", OPEN_T - 1e-3).last


def test_quote_is_sane_and_pinnable(market):
    for inst in market.instruments():
        q = market.quote(inst.key)
        assert 0 < q.bid < q.ask and q.low <= q.last <= q.high, inst.key
        assert q.prior_close > 0
    market.set_price("AAPL", 123.45)
    q = market.quote("AAPL")
    assert q.last == 123.45 and q.bid < 123.45 < q.ask
    market.clear_price("AAPL")
    assert market.quote("AAPL").last != 123.45


def test_quote_is_consistent_with_last_bar(market):
    q = market.quote("BTC", OPEN_T)
    b = market.bars("BTC", OPEN_T - 600, OPEN_T + 1e-6, 60)
    assert q.last == b.close[-1]


def test_ten_thousand_minute_bars_are_fast():
    m = PaperMarket(seed=1)
    m.bars("BTC", OPEN_T - 600, OPEN_T, 60)  # warm up
    best = min(_timed(lambda: m.bars("BTC", OPEN_T - 10_000 * 60, OPEN_T, 60))
               for _ in range(3))
    assert len(m.bars("BTC", OPEN_T - 10_000 * 60, OPEN_T, 60)) == 10_000
    assert best < 0.05


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@settings(max_examples=40, deadline=None)
@given(a=st.floats(0, 48 * 3600), b=st.floats(0, 48 * 3600))
def test_a_closed_market_stands_still(a, b):
    """From Friday 20:00 ET (extended hours end) to Sunday evening AAPL does not trade:
    the same quote all along, so the simulator sends no ticks."""
    market = PaperMarket(seed=5)
    start = dt.datetime(2024, 3, 9, 1, 0, 1, tzinfo=dt.timezone.utc).timestamp()
    qa, qb = market.quote("AAPL", start + a), market.quote("AAPL", start + b)
    same = ("bid", "ask", "last", "bid_size", "ask_size", "last_size", "volume", "high", "low")
    assert [getattr(qa, k) for k in same] == [getattr(qb, k) for k in same]
    assert not qa.is_open


def test_an_open_market_moves():
    market = PaperMarket(seed=5)
    quotes = [market.quote("AAPL", OPEN_T + s) for s in range(0, 30)]
    assert len({(q.bid_size, q.ask_size, q.last) for q in quotes}) > 1
