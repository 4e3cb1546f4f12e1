"""IB's historical request rules and pacing, tested as plain functions."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ib_nice_funcs.sim import PaperMarket
from ib_nice_funcs.sim._history import (
    BAR_SIZES,
    MAX_SPAN,
    HistError,
    PacingRules,
    PacingTracker,
    format_bar_dates,
    parse_bar_size,
    parse_duration,
    parse_end,
    plan_request,
)

from .conftest import OPEN_T

MARKET = PaperMarket(seed=11, clock=lambda: OPEN_T)


@pytest.mark.parametrize("bad", ["1 sec", "1 minute", "1 hours", "60 mins", "1 W", "1d", ""])
def test_bad_bar_sizes_are_321(bad):
    with pytest.raises(HistError) as exc:
        parse_bar_size(bad)
    assert exc.value.code == 321 and "bar size setting is invalid" in exc.value.message


@pytest.mark.parametrize("bad", ["1", "D", "1D", "0 D", "1 X", "-1 D", "1.5 D", "366 D", "53 W"])
def test_bad_durations_are_321(bad):
    with pytest.raises(HistError) as exc:
        parse_duration(bad)
    assert exc.value.code == 321


def test_durations():
    assert parse_duration("3600 S") == (3600, "S")
    assert parse_duration("365 D") == (365, "D")
    assert parse_duration("2 Y") == (2, "Y")


def test_end_date_forms():
    utc = dt.datetime(2024, 3, 1, 15, 0, tzinfo=dt.timezone.utc).timestamp()
    assert parse_end("", 123.0) == (123.0, False)
    assert parse_end("20240301 15:00:00 UTC", 0) == (utc, False)
    assert parse_end("20240301-15:00:00", 0) == (utc, False)
    assert parse_end("20240301 10:00:00 US/Eastern", 0) == (utc, False)
    assert parse_end("20240301 10:00:00", 0) == (utc, True)  # TWS zone, implied
    for bad in ("2024-03-01", "20240301", "20240301 10:00", "20240301-10:00:00 UTC",
                "20240301 10:00:00 Mars/Base"):
        with pytest.raises(HistError) as exc:
            parse_end(bad, 0)
        assert exc.value.code == 321


def _plan(**kw):
    args = dict(end_text="", duration="1 D", bar_size="1 min", what="TRADES", use_rth=1,
                format_date=1, keep_up_to_date=False, now=OPEN_T)
    args.update(kw)
    inst = MARKET.get(args.pop("symbol", "AAPL"))
    return plan_request(MARKET, inst, **args)


def test_what_to_show_rules():
    with pytest.raises(HistError) as exc:
        _plan(symbol="EUR.USD", what="TRADES")
    assert exc.value.code == 162 and "No historical market data" in exc.value.message
    with pytest.raises(HistError) as exc:
        _plan(symbol="BTC", what="TRADES")
    assert exc.value.code == 162
    with pytest.raises(HistError) as exc:
        _plan(symbol="AAPL", what="AGGTRADES")
    assert exc.value.code == 162
    with pytest.raises(HistError) as exc:
        _plan(what="VOLUME")
    assert exc.value.code == 321
    assert _plan(symbol="EUR.USD", what="MIDPOINT").what == "MIDPOINT"
    assert _plan(symbol="BTC", what="AGGTRADES").what == "AGGTRADES"


def test_format_date_and_keep_up_to_date_rules():
    with pytest.raises(HistError) as exc:
        _plan(format_date=0)
    assert exc.value.code == 321 and "Date formatting" in exc.value.message
    with pytest.raises(HistError) as exc:
        _plan(end_text="20240301 10:00:00 US/Eastern", keep_up_to_date=True)
    assert exc.value.code == 321


def test_too_long_is_162():
    with pytest.raises(HistError) as exc:
        _plan(bar_size="1 secs", duration="1 D")
    assert exc.value.code == 162 and "Time length exceed max" in exc.value.message
    assert _plan(bar_size="1 min", duration="5 D").start < OPEN_T


def test_days_are_trading_sessions():
    req = _plan(duration="5 D")
    bars = MARKET.bars("AAPL", req.start, req.end, 60)
    days = {dt.datetime.fromtimestamp(t, dt.timezone.utc).date() for t in bars.time}
    assert len(days) == 5
    assert len(bars) == 4 * 390 + 31  # four full sessions and today up to 10:00:30


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bar=st.sampled_from(sorted(BAR_SIZES)),
       unit=st.sampled_from("SDWMY"),
       n=st.integers(min_value=1, max_value=40),
       symbol=st.sampled_from(["AAPL", "EUR.USD", "BTC"]),
       rth=st.booleans())
def test_any_valid_request_gives_sane_bars_or_an_ib_error(bar, unit, n, symbol, rth):
    if unit == "S":
        n *= 60
    if unit == "Y":
        n = min(n, 2)
    what = {"AAPL": "TRADES", "EUR.USD": "MIDPOINT", "BTC": "AGGTRADES"}[symbol]
    seconds, kind = BAR_SIZES[bar]
    try:
        req = _plan(symbol=symbol, bar_size=bar, duration=f"{n} {unit}", what=what,
                    use_rth=int(rth))
    except HistError as exc:
        assert exc.code in (162, 321)
        if exc.code == 162:
            assert kind == "seconds" and "Time length exceed max" in exc.message
        return
    if kind == "seconds":
        span = n * {"S": 1, "D": 86400, "W": 7 * 86400, "M": 31 * 86400, "Y": 366 * 86400}[unit]
        assert span <= MAX_SPAN[seconds]
    bars = MARKET.bars(symbol, req.start, req.end, req.bar_seconds, req.kind, req.what,
                       req.use_rth)
    if len(bars) == 0:
        return
    assert np.all(bars.low <= np.minimum(bars.open, bars.close))
    assert np.all(bars.high >= np.maximum(bars.open, bars.close))
    assert np.all(np.diff(bars.time) > 0)
    assert bars.time[-1] <= req.end
    labels = format_bar_dates(bars.time, bars.dates, "US/Eastern", 2)
    if kind == "seconds":
        assert [int(x) for x in labels] == bars.time.tolist()
        assert np.all(np.diff(bars.time) % 1 == 0)
    else:
        assert all(len(x) == 8 for x in labels)


def test_pacing_tracker_rules():
    t = PacingTracker(PacingRules(identical_s=15, burst_count=6, burst_window_s=2,
                                  max_requests=8, window_s=600))
    assert t.check("a", "c1", 0.0) is None
    assert "identical" in t.check("a", "c1", 1.0)
    assert t.check("a", "c1", 16.0) is None
    for i in range(4):
        assert t.check(f"b{i}", "c1", 17.0 + i * 0.1) is None
    assert "same contract" in t.check("b9", "c1", 17.5)  # sixth within 2 s
    assert t.check("b9", "c2", 17.5) is None
    assert t.check("x1", "c3", 30.0) is None
    assert "more than 8" in t.check("x2", "c4", 31.0)
    assert t.check("x2", "c4", 700.0) is None


def test_pacing_can_spare_big_bars():
    t = PacingTracker(PacingRules(max_bar_seconds=30))
    assert t.check("a", "c", 0.0, bar_seconds=60) is None
    assert t.check("a", "c", 0.1, bar_seconds=60) is None
    assert t.check("s", "c", 0.2, bar_seconds=5) is None
    assert t.check("s", "c", 0.3, bar_seconds=5) is not None


def test_identical_and_burst_rules_cover_small_bars_only_and_bid_ask_counts_twice():
    t = PacingTracker(PacingRules(max_requests=10))
    for i in range(6):  # one contract, 1-hour bars, the same request again and again
        assert t.check("h", "c", 0.1 * i, bar_seconds=3600) is None
    assert t.check("s", "c9", 1.0, bar_seconds=30) is None
    assert "identical" in t.check("s", "c9", 1.1, bar_seconds=30)
    assert t.check("ba", "c2", 2.0, bar_seconds=300, weight=2) is None  # 7 + 2 = 9 of 10
    assert t.check("x", "c3", 3.0, bar_seconds=300) is None  # 10 of 10
    assert "more than 10" in t.check("y", "c4", 4.0, bar_seconds=3600)


@pytest.mark.parametrize("what", ["HISTORICAL_VOLATILITY", "SCHEDULE", "FEE_RATE"])
def test_valid_types_without_paper_data_are_162(what):
    m = PaperMarket(seed=1)
    with pytest.raises(HistError) as exc:
        plan_request(m, m.get("AAPL"), "", "1 D", "1 hour", what, 1, 1, False, OPEN_T)
    assert exc.value.code == 162 and "No historical market data" in exc.value.message
