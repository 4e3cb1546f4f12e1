"""Commission and market-data cost maths."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ib_nice_funcs.costs import MARKET_DATA_FEES, commission_usd, monthly_data_cost


@pytest.mark.parametrize(
    "sec_type, qty, price, fee",
    [
        ("STK", 100, 50.0, 1.00),  # 0.50 per share-rate -> $1 minimum
        ("STK", 1000, 50.0, 5.00),  # 0.005 * 1000
        ("stock", -1000, 50.0, 5.00),  # sells cost the same
        ("STK", 1, 5.0, 0.05),  # 1% of $5 caps below the $1 minimum
        ("STK", 10_000, 0.5, 50.0),  # 0.005 * 10,000 = 50 = 1% of 5,000
        ("STK", 10_000, 0.2, 20.0),  # capped at 1% of $2,000
        ("OPT", 3, 250.0, 1.95),
        ("OPT", 1, 10.0, 1.00),  # $1 minimum per order
        ("CASH", 100_000, 1.1, 2.20),  # 0.2 bps of 110,000 = 2.20
        ("fx", 10_000, 1.1, 2.00),  # minimum
        ("CRYPTO", 1, 60_000.0, 108.0),  # 0.18%
        ("crypto", 0.001, 60_000.0, 0.6),  # 1.75 min, capped at 1% of $60
        ("CRYPTO", 0.01, 60_000.0, 1.75),  # minimum
        ("STK", 0, 50.0, 0.0),
    ],
)
def test_commission_examples(sec_type, qty, price, fee):
    assert commission_usd(sec_type, qty, price) == pytest.approx(fee)


@given(
    st.sampled_from(["STK", "OPT", "CASH", "CRYPTO"]),
    st.floats(min_value=0.001, max_value=1e6),
    st.floats(min_value=0.01, max_value=1e5),
)
def test_commission_bounds(sec_type, qty, price):
    fee = commission_usd(sec_type, qty, price)
    value = qty * price
    assert fee >= 0
    if sec_type in ("STK", "CRYPTO"):
        assert fee <= value * 0.01 + 1e-4  # never above the 1% cap
    if sec_type == "STK":
        assert fee >= min(1.0, value * 0.01) - 1e-4
    if sec_type == "CASH":
        assert fee == pytest.approx(max(2.0, value * 0.2e-4), abs=1e-4)
    # Commission never falls when the order grows.
    assert commission_usd(sec_type, qty * 2, price) >= fee - 1e-4


@pytest.mark.parametrize(
    "args, exc",
    [
        (("FUT", 1, 1.0), ValueError),
        (("STK", math.nan, 1.0), ValueError),
        (("STK", 1, -1.0), ValueError),
        (("STK", 1, math.inf), ValueError),
        (("STK", "10", 1.0), TypeError),
        (("STK", True, 1.0), TypeError),
        ((None, 1, 1.0), TypeError),
    ],
)
def test_commission_rejects_bad_arguments(args, exc):
    with pytest.raises(exc):
        commission_usd(*args)


def test_data_fees_table():
    assert MARKET_DATA_FEES["us_equity_bundle"].non_professional == 4.50
    assert MARKET_DATA_FEES["nyse"].non_professional == 1.50
    assert MARKET_DATA_FEES["nyse"].professional == 50.0
    assert MARKET_DATA_FEES["nasdaq"].professional == 24.0


def test_monthly_data_cost():
    assert monthly_data_cost(["us_equity_bundle"], 0) == 4.50
    assert monthly_data_cost(["NYSE", "nasdaq"], 29.99) == 3.00
    assert monthly_data_cost(["nyse", "nyse"], 0) == 1.50  # repeats count once
    assert monthly_data_cost("us_equity_bundle", 10) == 4.50
    # Waived for non-professionals at $30 of commissions...
    assert monthly_data_cost(["us_equity_bundle", "nyse"], 30) == 0.0
    # ...never for professionals.
    assert monthly_data_cost(["nyse", "nasdaq"], 1000, professional=True) == 74.0
    assert monthly_data_cost([], 0) == 0.0


def test_monthly_data_cost_errors():
    with pytest.raises(ValueError, match="unknown market-data subscription"):
        monthly_data_cost(["opra_deluxe"], 0)
    with pytest.raises(ValueError, match="no professional price"):
        monthly_data_cost(["us_equity_bundle"], 0, professional=True)
    with pytest.raises(ValueError):
        monthly_data_cost(["nyse"], -1)
    with pytest.raises(ValueError):
        monthly_data_cost(["nyse"], math.nan)
