"""Pre-trade risk checks and day-trade counting."""

from __future__ import annotations

import math
from datetime import date, datetime, timezone
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ib_nice_funcs.trading.risk import (
    PortfolioSnapshot,
    RiskBreach,
    RiskLimits,
    check_order,
    count_day_trades,
)

LIMITS = RiskLimits()


def snap(positions=None, net_liq=100_000.0, pnl=0.0, margin=True, day_trades=0):
    return PortfolioSnapshot(positions or {}, net_liq, pnl, margin, day_trades)


def test_defaults_match_the_design():
    assert (LIMITS.max_position_usd, LIMITS.max_daily_loss_usd, LIMITS.max_exposure_usd) == (
        10_000, 5_000, 50_000
    )  # fmt: skip
    assert LIMITS.pdt_guard is True


@pytest.mark.parametrize("field", ["max_position_usd", "max_daily_loss_usd", "max_exposure_usd"])
@pytest.mark.parametrize("bad", [0, -1, math.nan])
def test_limits_must_be_positive(field, bad):
    with pytest.raises(ValueError, match=field):
        RiskLimits(**{field: bad})


def test_order_within_limits_passes():
    assert check_order(LIMITS, snap({"AAPL": 2_000}), "AAPL", "buy", 8_000) is None


def test_position_limit():
    breach = check_order(LIMITS, snap({"AAPL": 2_000}), "AAPL", "BUY", 8_001)
    assert breach == RiskBreach("max_position_usd", 10_001, 10_000, "AAPL")
    msg = breach.message
    assert "AAPL" in msg and "max_position_usd" in msg and "IB_MAX_POSITION_USD" in msg
    assert "$10,001.00" in msg and "$10,000.00" in msg and "configure(" in msg


def test_short_side_position_limit():
    breach = check_order(LIMITS, snap(), "TSLA", "sell", 12_000)
    assert breach is not None and breach.limit == "max_position_usd"
    assert breach.requested == 12_000


def test_exposure_limit():
    positions = {f"S{i}": 9_000.0 for i in range(5)}  # gross 45,000
    positions["SHORT"] = -4_000.0  # gross 49,000
    breach = check_order(LIMITS, snap(positions), "NEW", "BUY", 2_000)
    assert breach is not None and breach.limit == "max_exposure_usd"
    assert breach.requested == pytest.approx(51_000)
    assert "IB_MAX_EXPOSURE_USD" in breach.message and "max_exposure_usd" in breach.message
    assert check_order(LIMITS, snap(positions), "NEW", "BUY", 1_000) is None


def test_daily_loss_blocks_new_risk_but_not_reductions():
    s = snap({"AAPL": 5_000}, pnl=-5_000.01)
    breach = check_order(LIMITS, s, "AAPL", "BUY", 100)
    assert breach is not None and breach.limit == "max_daily_loss_usd"
    assert breach.requested == pytest.approx(5_000.01)
    assert "IB_MAX_DAILY_LOSS_USD" in breach.message
    assert check_order(LIMITS, s, "AAPL", "SELL", 5_000) is None
    # Exactly at the limit is not beyond it.
    assert check_order(LIMITS, snap(pnl=-5_000), "AAPL", "BUY", 100) is None


def test_flipping_to_a_large_opposite_position_is_checked():
    s = snap({"AAPL": 5_000})
    assert check_order(LIMITS, s, "AAPL", "SELL", 10_000) is None  # ends short 5,000
    breach = check_order(LIMITS, s, "AAPL", "SELL", 16_000)  # ends short 11,000
    assert breach is not None and breach.limit == "max_position_usd"


def test_pattern_day_trader_guard():
    small = snap(net_liq=20_000, day_trades=3)
    breach = check_order(LIMITS, small, "AAPL", "BUY", 1_000, opens_day_trade=True)
    assert breach is not None and breach.limit == "pattern_day_trader"
    assert breach.requested == 4 and breach.limit_value == 3
    assert "pattern-day-trader" in breach.message and "#4" in breach.message
    # Each condition alone lifts the guard.
    assert check_order(LIMITS, small, "AAPL", "BUY", 1_000) is None
    rich = snap(net_liq=25_000, day_trades=3)
    assert check_order(LIMITS, rich, "AAPL", "BUY", 1_000, True) is None
    fewer = snap(net_liq=20_000, day_trades=2)
    assert check_order(LIMITS, fewer, "AAPL", "BUY", 1_000, True) is None
    cash = snap(net_liq=20_000, day_trades=5, margin=False)
    assert check_order(LIMITS, cash, "AAPL", "BUY", 1_000, True) is None
    off = RiskLimits(pdt_guard=False)
    assert check_order(off, small, "AAPL", "BUY", 1_000, True) is None


@pytest.mark.parametrize(
    "side, value, exc",
    [("HOLD", 1, ValueError), ("BUY", -1, ValueError), ("BUY", math.nan, ValueError),
     ("BUY", math.inf, ValueError), (None, 1, ValueError), ("BUY", "1", TypeError)],
)  # fmt: skip
def test_check_order_rejects_bad_arguments(side, value, exc):
    with pytest.raises(exc):
        check_order(LIMITS, snap(), "AAPL", side, value)


money = st.floats(min_value=-60_000, max_value=60_000, allow_nan=False)


@given(
    st.dictionaries(st.sampled_from(["A", "B", "C", "D"]), money, max_size=4),
    st.sampled_from(["A", "B", "Z"]),
    st.sampled_from(["BUY", "SELL"]),
    st.floats(min_value=0, max_value=60_000),
    st.floats(min_value=-10_000, max_value=10_000),
    st.floats(min_value=0, max_value=100_000),
    st.booleans(),
    st.integers(0, 6),
    st.booleans(),
)
@settings(max_examples=300)
def test_check_order_properties(positions, symbol, side, value, pnl, net_liq, margin, dts, opens):
    s = snap(positions, net_liq, pnl, margin, dts)
    breach = check_order(LIMITS, s, symbol, side, value, opens)
    current = positions.get(symbol, 0.0)
    new = current + value if side == "BUY" else current - value
    if abs(new) <= abs(current):
        assert breach is None  # reducing is always allowed
        return
    gross = sum(abs(v) for k, v in positions.items() if k != symbol) + abs(new)
    if breach is None:
        assert abs(new) <= LIMITS.max_position_usd + 0.01
        assert gross <= LIMITS.max_exposure_usd + 0.01
        assert pnl >= -LIMITS.max_daily_loss_usd
        assert not (opens and margin and net_liq < 25_000 and dts >= 3)
    else:
        assert breach.symbol == symbol
        assert breach.limit in ("max_position_usd", "max_exposure_usd", "max_daily_loss_usd",
                                "pattern_day_trader")  # fmt: skip
        assert breach.requested > breach.limit_value or breach.limit == "pattern_day_trader"


# --- day trades ------------------------------------------------------------------

MON = date(2024, 3, 4)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    # 14:30 UTC is 09:30 in New York in early March (EST).
    return datetime(2024, 3, day, hour, minute, tzinfo=timezone.utc)


def test_simple_round_trip_is_one_day_trade():
    fills = [("AAPL", "BUY", 10, at(4, 15)), ("AAPL", "SELL", 10, at(4, 16))]
    assert count_day_trades(fills, MON) == 1


@pytest.mark.parametrize(
    "sides, expected",
    [
        ("B B S", 1),
        ("B S B S", 2),
        ("B S S", 1),  # 2 sells closing 2 lots bought in one go
        ("S B", 1),  # short then cover
        ("B", 0),
        ("S", 0),
        ("B B", 0),
    ],
)
def test_sequence_counting(sides, expected):
    qty = {"B": 10, "S": 10}
    seq = sides.split()
    if sides == "B S S":
        fills = [("X", "BUY", 20, at(4, 15)), ("X", "SELL", 10, at(4, 16)),
                 ("X", "SELL", 10, at(4, 17))]  # fmt: skip
    else:
        fills = [
            ("X", "BUY" if s == "B" else "SELL", qty[s], at(4, 15, i)) for i, s in enumerate(seq)
        ]
    assert count_day_trades(fills, MON) == expected


def test_overnight_positions_and_windows():
    fills = [
        ("AAPL", "BUY", 10, at(1, 15)),  # Friday
        ("AAPL", "SELL", 10, at(4, 15)),  # Monday: not the same day
        ("MSFT", "BOT", 5, at(4, 15)),
        ("MSFT", "SLD", 5, at(4, 19)),
        ("TSLA", "BUY", 1, at(4, 15)),
        ("TSLA", "SELL", 1, at(4, 15, 1)),
    ]
    assert count_day_trades(fills, MON) == 2
    # Five business days back from Monday 4 March reaches Tuesday 27 Feb.
    old = [("A", "BUY", 1, datetime(2024, 2, 27, 15, tzinfo=timezone.utc)),
           ("A", "SELL", 1, datetime(2024, 2, 27, 16, tzinfo=timezone.utc))]  # fmt: skip
    assert count_day_trades(old, MON) == 1
    assert count_day_trades(old, date(2024, 3, 5)) == 0
    assert count_day_trades(old, MON, holidays={date(2024, 3, 1)}) == 1
    assert count_day_trades(old, date(2024, 3, 5), holidays={date(2024, 3, 1)}) == 1


def test_trading_day_is_new_york_time():
    # 23:30 and 00:30 UTC are both the evening of 4 March in New York.
    fills = [("X", "BUY", 1, datetime(2024, 3, 4, 23, 30, tzinfo=timezone.utc)),
             ("X", "SELL", 1, datetime(2024, 3, 5, 0, 30, tzinfo=timezone.utc))]  # fmt: skip
    assert count_day_trades(fills, date(2024, 3, 5)) == 1
    assert count_day_trades(fills, date(2024, 3, 5), tz="UTC") == 0


def test_fill_objects_are_accepted():
    fills = [SimpleNamespace(symbol="X", side="BUY", qty=1, time=at(4, 15)),
             SimpleNamespace(symbol="X", side="SELL", quantity=1, time=at(4, 16))]  # fmt: skip
    assert count_day_trades(fills, MON) == 1
    with pytest.raises(ValueError):
        count_day_trades([("X", "HOLD", 1, at(4, 15))], MON)
    with pytest.raises(ValueError):
        count_day_trades([], MON, business_days=0)


@given(st.lists(st.tuples(st.sampled_from(["A", "B"]), st.sampled_from(["BUY", "SELL"]),
                          st.integers(1, 5)), max_size=30))  # fmt: skip
def test_day_trades_bounded_by_closing_fills(raw):
    start = datetime(2024, 3, 4, 15, tzinfo=timezone.utc)
    fills = [(s, side, q, start.replace(microsecond=i)) for i, (s, side, q) in enumerate(raw)]
    n = count_day_trades(fills, MON)
    # Each day trade needs a side change within a symbol's sequence.
    changes = 0
    for sym in ("A", "B"):
        sides = [side for s, side, _, _ in fills if s == sym]
        changes += sum(1 for a, b in zip(sides, sides[1:], strict=False) if a != b)
    assert 0 <= n <= changes
