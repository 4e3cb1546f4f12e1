"""Unit tests of the trading layer's I/O-free helpers (no gateway, no simulator)."""

from __future__ import annotations

import math
from datetime import date, datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ib_async import AccountValue, Order, OrderStatus, Stock, Trade, TradeLogEntry

from ib_nice_funcs.errors import ConfigurationError, LiveTradingDisabledError
from ib_nice_funcs.trading.account import (
    DailyBaseline,
    account_number,
    check_live_allowed,
    day_trades_used,
    exchange_rates,
    pick_account,
    signed_values_usd,
    trading_day,
)
from ib_nice_funcs.trading.positions import diff_positions, no_position, position_dict
from ib_nice_funcs.trading.results import (
    effective_status,
    is_multiple,
    is_settled,
    rejection_of,
    round_price,
    round_quantity,
    trade_result,
    waits_for_fill,
)
from ib_nice_funcs.trading.validation import validate_order
from ib_nice_funcs.trading.venues.tws import build_ib_order

NOW = datetime(2026, 11, 18, 20, 0, tzinfo=timezone.utc)


def make_trade(status: str, *, log: list[tuple[str, str, int]] = (), filled: float = 0.0,
               avg: float = 0.0, qty: float = 10, ref: str = "ref-1") -> Trade:
    order = Order(orderId=5, clientId=7, action="BUY", totalQuantity=qty, orderType="MKT",
                  orderRef=ref)
    state = OrderStatus(orderId=5, status=status, filled=filled, remaining=qty - filled,
                        avgFillPrice=avg, permId=99)
    entries = [TradeLogEntry(NOW, s, m, c) for s, m, c in log]
    return Trade(Stock("AAPL", "SMART", "USD"), order, state, [], entries)


# -- statuses and results ----------------------------------------------------------------


def test_effective_status_looks_past_ib_async_validation_marker():
    trade = make_trade("ValidationError", log=[("PendingSubmit", "", 0), ("PreSubmitted", "", 0),
                                               ("ValidationError", "Warning 399 ...", 399)])
    assert effective_status(trade) == "PreSubmitted"
    assert is_settled(trade, for_fill=False)
    assert not is_settled(trade, for_fill=True)


def test_rejection_carries_ib_code_and_message():
    trade = make_trade("Cancelled", log=[
        ("PendingSubmit", "", 0),
        ("Cancelled", "Error 201, reqId 5: Order rejected - reason:No buying power", 201)])
    assert rejection_of(trade) == (201, "Order rejected - reason:No buying power")
    result = trade_result(trade, "AAPL")
    assert result["success"] is False
    assert result["code"] == 201
    assert "No buying power" in result["error"]
    assert result["client_order_id"] == "ref-1"
    assert result["order_id"] == 5


def test_filled_trade_result_has_nice_funcs_keys():
    result = trade_result(make_trade("Filled", filled=10, avg=190.5), "AAPL")
    for key in ("success", "order_id", "client_order_id", "status", "filled_qty", "avg_price",
                "error"):
        assert key in result
    assert result["success"] is True
    assert result["filled_qty"] == 10
    assert result["avg_price"] == 190.5
    assert result["error"] is None


def test_working_and_pending_results():
    assert trade_result(make_trade("Submitted"))["success"] is True
    assert trade_result(make_trade("PendingSubmit"))["success"] is False
    partial = make_trade("Cancelled", filled=4, avg=10,
                         log=[("Cancelled", "Error 202, reqId 5: x", 202)])
    result = trade_result(partial)
    assert result["success"] is True and "partially filled" in result["error"]


def test_waits_for_fill_only_for_immediate_orders():
    assert waits_for_fill("MKT", "DAY")
    assert waits_for_fill("LMT", "IOC")
    assert waits_for_fill("LMT", "FOK")
    for kind in ("LMT", "STP", "TRAIL", "MOC", "LOC", "MIDPRICE"):
        assert not waits_for_fill(kind, "DAY")


# -- prices and sizes ---------------------------------------------------------------------


def test_round_price_in_the_customers_favour():
    assert round_price(187.2345, 0.01, "down") == 187.23
    assert round_price(187.2345, 0.01, "up") == 187.24
    assert round_price(1.234567, 0.00005, "nearest") == 1.23455
    assert round_price(0.001, 0.01, "down") == 0.01  # never zero
    assert round_price(5.5, 0.0) == 5.5


def test_round_quantity_never_rounds_up():
    assert round_quantity(0.03, 0.0001) == 0.03
    assert round_quantity(10.99, 1) == 10
    assert is_multiple(0.0217, 0.0001)
    assert not is_multiple(0.00005, 0.0001)


@given(st.floats(min_value=0.0001, max_value=1e6), st.sampled_from([1.0, 0.0001, 0.01, 1e-8]))
def test_round_quantity_property(quantity, increment):
    q = round_quantity(quantity, increment)
    assert q <= quantity + 1e-9
    assert quantity - q < increment + 1e-9
    assert is_multiple(q, increment)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"order_type": "MKT"}, {"orderType": "MKT"}),
        ({"order_type": "LMT", "limit_price": 187.239}, {"lmtPrice": 187.23}),
        ({"order_type": "STP", "stop_price": 180.004}, {"auxPrice": 180.0}),
        ({"order_type": "TRAIL", "trail_percent": 2.5}, {"trailingPercent": 2.5}),
        ({"order_type": "TRAIL", "trail_amount": 1.234, "stop_price": 170.0},
         {"auxPrice": 1.23, "trailStopPrice": 170.0}),
        ({"order_type": "MOC"}, {"orderType": "MOC"}),
        ({"order_type": "LOC", "limit_price": 190.001}, {"lmtPrice": 190.0}),
        ({"order_type": "MIDPRICE"}, {"orderType": "MIDPRICE"}),
    ],
)
def test_build_ib_order_for_each_type(kwargs, expected):
    request = validate_order("AAPL", "BUY", 3, client_order_id="abc-1", **kwargs)
    order = build_ib_order(request, 3, account="DU1", min_tick=0.01)
    assert order.action == "BUY" and order.totalQuantity == 3
    assert order.orderRef == "abc-1" and order.account == "DU1" and order.tif == "DAY"
    for name, value in expected.items():
        assert getattr(order, name) == pytest.approx(value)


def test_sell_limit_rounds_up():
    request = validate_order("AAPL", "SELL", 1, "LMT", limit_price=187.231)
    assert build_ib_order(request, 1, account=None, min_tick=0.01).lmtPrice == 187.24


# -- account ---------------------------------------------------------------------------------


def test_live_guard_refuses_live_accounts_and_says_how_to_enable():
    check_live_allowed("DU1234567", False)
    check_live_allowed("U1234567", True)
    with pytest.raises(LiveTradingDisabledError) as err:
        check_live_allowed("U1234567", False)
    assert "IB_NICE_FUNCS_ALLOW_LIVE=1" in str(err.value)
    assert "configure(allow_live=True)" in str(err.value)


def test_pick_account():
    assert pick_account(None, ["DU1"]) == "DU1"
    assert pick_account("DU2", ["DU1", "DU2"]) == "DU2"
    with pytest.raises(ConfigurationError, match="IB_ACCOUNT"):
        pick_account(None, ["DU1", "DU2"])
    with pytest.raises(ConfigurationError):
        pick_account(None, [])


def test_account_number_prefers_usd_and_skips_other_accounts():
    values = [
        AccountValue("DU1", "NetLiquidation", "100.5", "USD", ""),
        AccountValue("DU1", "NetLiquidation", "90", "BASE", ""),
        AccountValue("DU2", "NetLiquidation", "7", "USD", ""),
        AccountValue("DU1", "NetLiquidationByCurrency", "1", "EUR", ""),
        AccountValue("DU1", "DayTradesRemaining", "2", "", ""),
        AccountValue("DU1", "ExchangeRate", "1.09", "EUR", ""),
    ]
    assert account_number(values, "NetLiquidation", "DU1") == 100.5
    assert account_number(values, "NetLiquidation", "DU2") == 7
    assert account_number(values, "AvailableFunds", "DU1") is None
    assert account_number(values, "DayTradesRemaining", "DU1") == 2
    assert exchange_rates(values, "DU1") == {"USD": 1.0, "EUR": 1.09}


def test_daily_baseline_resets_each_day_and_prefers_ib():
    base = DailyBaseline()
    assert base.pnl(100_000, date(2026, 11, 18)) == 0
    assert base.pnl(99_000, date(2026, 11, 18)) == -1000
    assert base.pnl(99_000, date(2026, 11, 18), ib_daily_pnl=-250.0) == -250.0
    assert base.pnl(98_000, date(2026, 11, 19)) == 0
    assert base.pnl(98_000, date(2026, 11, 19), ib_daily_pnl=math.nan) == 0


def test_trading_day_is_new_york():
    assert trading_day(datetime(2026, 11, 19, 3, 0, tzinfo=timezone.utc)) == date(2026, 11, 18)


def test_trading_day_takes_the_injected_clock_epoch():
    moment = datetime(2026, 11, 19, 3, 0, tzinfo=timezone.utc)
    assert trading_day(moment.timestamp()) == date(2026, 11, 18)


def test_signed_values_and_day_trades():
    assert signed_values_usd([("AAPL", 10, 190, 1.0), ("EURUSD", -1000, 1.1, 1.0)]) == {
        "AAPL": 1900.0, "EURUSD": pytest.approx(-1100.0)}
    fills = [("AAPL", "BOT", 1, NOW), ("AAPL", "SLD", 1, NOW)]
    assert day_trades_used(fills, NOW.date(), {"DayTradesRemaining": None}) == 1
    assert day_trades_used([], NOW.date(), {"DayTradesRemaining": 1.0}) == 2
    assert day_trades_used([], NOW.date(), {"DayTradesRemaining": -1.0}) == 0


# -- positions --------------------------------------------------------------------------------


def test_position_dict_shapes():
    long = position_dict("AAPL", 10, 100.0, 110.0)
    assert long == {"has_position": True, "quantity": 10.0, "symbol": "AAPL", "avg_cost": 100.0,
                    "current_price": 110.0, "market_value": 1100.0, "unrealized_pnl": 100.0,
                    "unrealized_pnl_pct": pytest.approx(10.0), "known": True,
                    # the same facts under the perp agents' (and exchange manager's) names
                    "position_amount": 10.0, "entry_price": 100.0, "mark_price": 110.0,
                    "pnl": 100.0, "pnl_percentage": pytest.approx(10.0), "is_long": True,
                    "amount": 10.0, "pnl_percent": pytest.approx(10.0)}
    short = position_dict("AAPL", -10, 100.0, 90.0)
    assert short["unrealized_pnl"] == 100.0 and short["unrealized_pnl_pct"] == pytest.approx(10.0)
    assert short["position_amount"] == -10.0 and short["is_long"] is False
    flat = no_position("AAPL")
    assert flat["has_position"] is False and flat["quantity"] == 0.0 and set(flat) == set(long)


def test_diff_positions_kinds():
    diffs = diff_positions({"AAPL": 10, "MSFT": 5, "BTC-USD": 0.5},
                           {"AAPL": 10, "BTC-USD": 0.4, "TSLA": 2})
    by = {d["symbol"]: d for d in diffs}
    assert set(by) == {"MSFT", "BTC-USD", "TSLA"}
    assert by["MSFT"]["kind"] == "missing_at_broker"
    assert by["TSLA"]["kind"] == "unexpected_at_broker"
    assert by["BTC-USD"]["kind"] == "quantity_mismatch"
    assert by["BTC-USD"]["difference"] == pytest.approx(-0.1)
    assert diff_positions({"AAPL": 1}, {"AAPL": 1.0}) == []
