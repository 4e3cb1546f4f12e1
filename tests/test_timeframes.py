"""Timeframes, IB durations, chunk plans and the pacing budget (fake clock)."""

from __future__ import annotations

import math
import re
import threading
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ib_nice_funcs.timeframes import (
    DERIVED_TIMEFRAMES,
    VALID_TIMEFRAMES,
    Chunk,
    PacingBudget,
    Timeframe,
    days_back_range,
    ib_duration,
    parse_timeframe,
    plan_chunks,
)

UTC = timezone.utc
IB_BAR_SIZES = {
    "1 secs", "5 secs", "15 secs", "30 secs", "1 min", "2 mins", "3 mins", "5 mins", "15 mins",
    "30 mins", "1 hour", "2 hours", "3 hours", "4 hours", "8 hours", "1 day", "1 week", "1 month",
}  # fmt: skip
YAHOO_INTERVALS = {"1m", "2m", "5m", "15m", "30m", "60m", "90m", "1h", "1d", "5d", "1wk"}
_DURATION_RE = re.compile(r"^(\d+) ([SDWY])$")
_UNIT_SECONDS = {"S": 1, "D": 86400, "W": 7 * 86400, "Y": 365 * 86400}


def duration_seconds(text: str) -> int:
    m = _DURATION_RE.match(text)
    assert m, f"not an IB duration: {text!r}"
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]


# --- parsing ---------------------------------------------------------------------


def test_valid_timeframes_are_the_documented_ones():
    assert VALID_TIMEFRAMES == ("1m", "2m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "1d", "1w")


@pytest.mark.parametrize(
    "text, name",
    [("1m", "1m"), ("3m", "3m"), ("15m", "15m"), ("1h", "1h"), ("1H", "1h"), ("2H", "2h"),
     ("4H", "4h"), ("1d", "1d"), ("1D", "1d"), ("1w", "1w"), ("1W", "1w"), (" 4h ", "4h"),
     ("60m", "1h"), ("1wk", "1w")],
)  # fmt: skip
def test_accepted_spellings(text, name):
    assert parse_timeframe(text).name == name


def test_table_uses_exact_ib_and_yahoo_strings():
    for name in VALID_TIMEFRAMES:
        tf = parse_timeframe(name)
        assert tf.ib_bar_size in IB_BAR_SIZES
        assert tf.yahoo_interval in YAHOO_INTERVALS
        if tf.yahoo_resample is None:
            # Without resampling Yahoo's interval must already be the bar size.
            assert tf.yahoo_interval in (name, {"1h": "60m", "1w": "1wk"}.get(name))
        assert tf.max_chunk_seconds >= tf.seconds
    assert parse_timeframe("1m").ib_bar_size == "1 min"
    assert parse_timeframe("2m").ib_bar_size == "2 mins"
    assert parse_timeframe("1h").ib_bar_size == "1 hour"
    assert parse_timeframe("4h").ib_bar_size == "4 hours"
    assert parse_timeframe("1d").ib_bar_size == "1 day"
    assert parse_timeframe("1w").ib_bar_size == "1 week"
    assert (parse_timeframe("3m").yahoo_interval, parse_timeframe("3m").yahoo_resample) == (
        "1m", "3min"
    )  # fmt: skip
    assert parse_timeframe("4h").yahoo_resample == "4h"
    assert parse_timeframe("1m").yahoo_max_days == 30
    assert parse_timeframe("1m").yahoo_request_days == 7
    assert parse_timeframe("15m").yahoo_max_days == 60
    assert parse_timeframe("1d").yahoo_max_days is None


def test_one_capital_m_is_a_month_and_one_small_m_a_minute():
    # The agents' convention (their DATA_TIMEFRAME list): 1M is a month, 1m a minute.
    month = parse_timeframe("1M")
    assert month.name == "1M" and month.base == "1d" and month.resample_rule == "MS"
    assert parse_timeframe("1month") is month
    assert parse_timeframe("1m").seconds == 60
    with pytest.raises(ValueError) as err:
        parse_timeframe("2M")
    assert "1m" in str(err.value) and "1M" in str(err.value)


@pytest.mark.parametrize(("text", "name", "base"), [
    ("6H", "6h", "2h"), ("8h", "8h", "4h"), ("12H", "12h", "4h"), ("3D", "3d", "1d"),
])
def test_the_agents_other_bar_sizes_are_resampled_from_a_native_one(text, name, base):
    tf = parse_timeframe(text)
    assert (tf.name, tf.base) == (name, base)
    assert tf.seconds % parse_timeframe(base).seconds == 0
    assert name in DERIVED_TIMEFRAMES and name not in VALID_TIMEFRAMES


@pytest.mark.parametrize("bad", ["", "7H", "5h", "2D", "1y", "1 hour", "m", "1", "2mo", "-1m"])
def test_unknown_timeframes_list_the_valid_ones(bad):
    with pytest.raises(ValueError) as err:
        parse_timeframe(bad)
    assert all(name in str(err.value) for name in VALID_TIMEFRAMES)


@pytest.mark.parametrize("bad", [None, 1, 1.0, b"1h", ["1h"]])
def test_non_str_timeframe_is_a_type_error(bad):
    with pytest.raises(TypeError):
        parse_timeframe(bad)


def test_timeframe_passes_through():
    tf = parse_timeframe("4h")
    assert parse_timeframe(tf) is tf and isinstance(tf, Timeframe)


# --- durations -------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds, text",
    [(1, "1 S"), (0.2, "1 S"), (60, "60 S"), (3600.5, "3601 S"), (86400, "86400 S"),
     (86401, "2 D"), (3 * 86400, "3 D"), (7 * 86400, "1 W"), (14 * 86400 - 5, "2 W"),
     (365 * 86400, "365 D"), (366 * 86400, "2 Y"), (800 * 86400, "3 Y")],
)  # fmt: skip
def test_ib_duration_examples(seconds, text):
    assert ib_duration(seconds) == text


@given(st.floats(min_value=1e-3, max_value=20 * 365 * 86400, allow_nan=False))
def test_ib_duration_always_covers_and_is_valid(seconds):
    text = ib_duration(seconds)
    covered = duration_seconds(text)
    assert covered >= seconds - 1e-5
    unit = text.split()[1]
    if seconds <= 86400:
        assert unit == "S"
    elif seconds > 366 * 86400:
        assert unit == "Y"
    else:
        assert unit in ("D", "W", "Y")
    if unit == "S":
        assert covered < seconds + 1 + 1e-5


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, True])
def test_ib_duration_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        ib_duration(bad)


# --- chunk plans -----------------------------------------------------------------

datetimes = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(VALID_TIMEFRAMES),
    datetimes,
    st.floats(min_value=1.0, max_value=3 * 365 * 86400.0),
)
def test_chunks_tile_the_range_newest_first(name, start, span_s):
    tf = parse_timeframe(name)
    end = start + timedelta(seconds=span_s)
    assume(end > start)
    chunks = plan_chunks(name, start, end)
    assert chunks[0].end == end
    assert chunks[-1].start == start
    for newer, older in zip(chunks, chunks[1:], strict=False):
        assert older.end == newer.start  # no gap, no overlap
    for c in chunks:
        assert isinstance(c, Chunk)
        assert c.start < c.end
        assert c.start.tzinfo is not None and c.start.utcoffset() == timedelta(0)
        span = (c.end - c.start).total_seconds()
        assert span <= tf.max_chunk_seconds
        # The duration asked of IB covers the chunk but never beyond the
        # pacing-safe maximum (rounded to a whole day for daily bars).
        covered = duration_seconds(c.duration)
        assert covered >= span - 1e-5
        assert covered <= max(tf.max_chunk_seconds, tf.seconds) + 86400
        if tf.seconds >= 86400:
            assert not c.duration.endswith(" S")
    # No more chunks than needed.
    assert len(chunks) == max(1, math.ceil(span_s / tf.max_chunk_seconds - 1e-9))


def test_plan_examples():
    end = datetime(2024, 3, 8, 21, 0, tzinfo=UTC)
    chunks = plan_chunks("1m", end - timedelta(days=2.5), end)
    assert [c.duration for c in chunks] == ["4 D"]  # sessions: one spare day
    chunks = plan_chunks("1m", end - timedelta(days=9), end)
    assert [c.duration for c in chunks] == ["1 W", "3 D"]  # a week per request at most
    one = plan_chunks("1h", end - timedelta(minutes=10), end)
    assert one == [Chunk(end - timedelta(minutes=10), end, "3600 S")]  # at least one bar
    daily = plan_chunks("1d", end - timedelta(days=0.33), end)
    assert [c.duration for c in daily] == ["1 D"]
    weekly = plan_chunks("1w", end - timedelta(days=2), end)
    assert [c.duration for c in weekly] == ["1 W"]
    # TWS counts "D" in sessions (today's partial one included): a spare day.
    half_hours = plan_chunks("30m", end - timedelta(days=40), end)
    assert [c.duration for c in half_hours] == ["31 D", "11 D"]
    five = plan_chunks("5m", end - timedelta(days=20), end)
    assert [c.duration for c in five] == ["1 W", "1 W", "1 W"]  # 6 D + 1 = 1 W
    assert five[0].ib_end == "20240308 21:00:00 UTC"


def test_ib_end_is_whole_seconds_utc():
    est = timezone(-timedelta(hours=5))
    end = datetime(2024, 3, 8, 16, 0, 0, 999_999, tzinfo=est)
    (chunk,) = plan_chunks("1h", end - timedelta(hours=3), end)
    assert chunk.ib_end == "20240308 21:00:00 UTC"


def test_plan_accepts_naive_and_other_zones():
    naive = plan_chunks("5m", datetime(2024, 1, 1), datetime(2024, 1, 2))
    est = timezone(-timedelta(hours=5))
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, 19, tzinfo=est)
    aware = plan_chunks("5m", start, end)
    assert naive == aware


def test_plan_rejects_empty_range():
    t = datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="after start"):
        plan_chunks("1h", t, t)
    with pytest.raises(TypeError):
        plan_chunks("1h", "2024-01-01", t)


# --- days_back -------------------------------------------------------------------


@given(st.floats(min_value=1e-4, max_value=3650, allow_nan=False))
def test_days_back_range_is_exact(days):
    now = datetime(2024, 6, 1, 12, tzinfo=UTC)
    start, end = days_back_range(days, now)
    assert end == now
    assert abs((end - start).total_seconds() - days * 86400) < 1e-3
    assert start.tzinfo is not None


def test_days_back_range_defaults_to_now_utc():
    start, end = days_back_range(0.33)
    assert end.utcoffset() == timedelta(0)
    assert abs((datetime.now(UTC) - end).total_seconds()) < 5
    assert abs((end - start).total_seconds() - 0.33 * 86400) < 1e-3


@pytest.mark.parametrize("bad", [0, -1, -0.5, math.nan, math.inf, -math.inf, True, False, 1e12])
def test_days_back_range_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="days_back"):
        days_back_range(bad)


@pytest.mark.parametrize("bad", ["3", None, [3]])
def test_days_back_range_rejects_non_numbers(bad):
    with pytest.raises(TypeError, match="days_back"):
        days_back_range(bad)


# --- pacing ----------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def assert_no_rule_broken(sends, *, gap, burst_count, burst_window, max_requests, window):
    """Check a log of (time, key, contract_key) against IB's three pacing rules."""
    eps = 1e-9
    by_key: dict = {}
    by_contract: dict = {}
    for t, key, ck in sends:
        by_key.setdefault(key, []).append(t)
        by_contract.setdefault(ck, []).append(t)
    for times in by_key.values():
        times.sort()
        for a, b in zip(times, times[1:], strict=False):
            assert b - a >= gap - eps, f"identical requests {b - a:.3f}s apart"
    for times in by_contract.values():
        times.sort()
        for i in range(len(times) - burst_count):
            span = times[i + burst_count] - times[i]
            assert span >= burst_window - eps, f"{burst_count + 1} requests in {span:.3f}s"
    everything = sorted(t for t, _, _ in sends)
    for i in range(len(everything) - max_requests):
        span = everything[i + max_requests] - everything[i]
        assert span >= window - eps, f"{max_requests + 1} requests in {span:.3f}s"


RULES = dict(gap=15.0, burst_count=5, burst_window=2.0, max_requests=8, window=60.0)

ops = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=20),  # clock advance before the request
        st.integers(0, 3),  # request key (identical when equal, within a contract)
        st.integers(0, 2),  # contract
    ),
    min_size=1,
    max_size=60,
)


def _budget(clock, margin=0.0):
    return PacingBudget(
        clock=clock,
        max_requests=RULES["max_requests"],
        window_s=RULES["window"],
        identical_gap_s=RULES["gap"],
        burst_count=RULES["burst_count"],
        burst_window_s=RULES["burst_window"],
        margin_s=margin,
    )


@settings(max_examples=150, deadline=None)
@given(ops, st.sampled_from([0.0, 0.1]))
def test_reserve_never_breaks_a_rule(sequence, margin):
    """Concurrent callers: each books a slot now, possibly in the future."""
    clock = FakeClock()
    budget = _budget(clock, margin)
    sends = []
    for advance, k, c in sequence:
        clock.t += advance
        delay = budget.reserve((c, k), c)
        assert delay >= 0
        sends.append((clock.t + delay, (c, k), c))
    assert_no_rule_broken(sends, **RULES)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_delay_then_record_never_breaks_a_rule(sequence):
    """One caller: wait the delay, then send and record."""
    clock = FakeClock()
    budget = _budget(clock)
    sends = []
    for advance, k, c in sequence:
        clock.t += advance
        delay = budget.delay_for((c, k), c)
        assert delay >= 0
        clock.t += delay
        assert budget.delay_for((c, k), c) == pytest.approx(0.0, abs=1e-9)
        budget.record((c, k), c)
        sends.append((clock.t, (c, k), c))
    assert_no_rule_broken(sends, **RULES)


@settings(max_examples=100, deadline=None)
@given(ops)
def test_delays_are_not_needlessly_long(sequence):
    """With past records only, sending any earlier than the delay would break a rule."""
    clock = FakeClock()
    budget = _budget(clock)
    sends = []
    for advance, k, c in sequence:
        clock.t += advance
        delay = budget.delay_for((c, k), c)
        if delay > 0.01:
            early = sends + [(clock.t + delay - 0.01, (c, k), c)]
            with pytest.raises(AssertionError):
                assert_no_rule_broken(early, **RULES)
        clock.t += delay
        budget.record((c, k), c)
        sends.append((clock.t, (c, k), c))


def test_pacing_examples_with_default_limits():
    clock = FakeClock()
    budget = PacingBudget(clock=clock, margin_s=0.0)
    assert budget.delay_for("req", "AAPL") == 0.0
    budget.record("req", "AAPL")
    clock.t += 5
    assert budget.delay_for("req", "AAPL") == pytest.approx(10.0)  # identical: 15 s apart
    assert budget.delay_for("other", "AAPL") == 0.0
    # Five distinct requests for one contract inside 2 s: the sixth waits.
    for i in range(4):
        budget.record(f"r{i}", "MSFT")
    clock.t += 0.5
    budget.record("r4", "MSFT")
    assert budget.delay_for("r5", "MSFT") == pytest.approx(1.5)
    assert budget.delay_for("r5", "TSLA") == 0.0


def test_sixty_per_ten_minutes():
    clock = FakeClock()
    budget = PacingBudget(clock=clock, margin_s=0.0)
    for i in range(60):
        clock.t += 3.0
        assert budget.reserve(f"k{i}", f"c{i}") == 0.0
    # The 61st must wait until the first leaves the 600 s window.
    first = 1003.0
    assert budget.delay_for("k60", "c60") == pytest.approx(first + 600 - clock.t)


def test_margin_adds_slack():
    clock = FakeClock()
    budget = PacingBudget(clock=clock, margin_s=0.25)
    budget.record("k", "c")
    assert budget.delay_for("k", "c") == pytest.approx(15.25)


def test_old_records_are_forgotten():
    clock = FakeClock()
    budget = PacingBudget(clock=clock)
    for i in range(10):
        budget.reserve(f"k{i}", "c")
    clock.t += 10_000
    budget.delay_for("x", "y")
    assert len(budget) == 0


def test_reserve_is_thread_safe():
    clock = FakeClock()
    budget = PacingBudget(clock=clock, margin_s=0.0)
    sends = []
    lock = threading.Lock()

    def worker(n):
        for i in range(20):
            d = budget.reserve(("same", i % 2), "AAPL")
            with lock:
                sends.append((clock.t + d, ("same", i % 2), "AAPL"))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sends) == 80
    assert_no_rule_broken(
        sends, gap=15.0, burst_count=5, burst_window=2.0, max_requests=60, window=600.0
    )


@pytest.mark.parametrize(
    "kwargs",
    [{"max_requests": 0}, {"burst_count": True}, {"window_s": 0}, {"identical_gap_s": math.nan},
     {"margin_s": -1}],
)  # fmt: skip
def test_budget_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        PacingBudget(**kwargs)


def test_importing_timeframes_imports_nothing_heavy():
    import subprocess
    import sys

    code = (
        "import sys, ib_nice_funcs.timeframes as t; t.plan_chunks('1h', *t.days_back_range(3));"
        "print([m for m in ('pandas', 'numpy', 'ib_async', 'yfinance', 'requests')"
        " if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
