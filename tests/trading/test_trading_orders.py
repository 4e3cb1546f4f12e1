"""Order life cycles against the paper TWS simulator over loopback."""

from __future__ import annotations

import pytest

from ib_nice_funcs.errors import OrderRejectedError
from ib_nice_funcs.trading import NoPositionError, OrderSizeError


def test_market_buy_stock_whole_shares(trader, tsim, book):
    price = trader.client.price("AAPL")
    result = trader.market_buy("AAPL", 1000)
    assert result["success"] is True and result["status"] == "Filled"
    assert result["filled_qty"] == int(1000 // price)
    assert result["avg_price"] > 0 and result["error"] is None
    assert result["client_order_id"] and result["order_id"]
    assert book(tsim) == {"AAPL": result["filled_qty"]}
    pos = trader.get_position("aapl")
    assert pos["has_position"] and pos["quantity"] == result["filled_qty"]
    assert pos["market_value"] == pytest.approx(pos["quantity"] * pos["current_price"])
    assert trader.get_token_balance_usd("AAPL") == pytest.approx(pos["market_value"])


def test_market_buy_crypto_fractional_then_sell_percentages(trader, tsim, book):
    bought = trader.market_buy("BTC-USD", 2500)
    assert bought["status"] == "Filled"
    qty = bought["filled_qty"]
    assert 0 < qty < 1 and qty != int(qty)
    half = trader.market_sell("BTCUSD", 50)
    assert half["status"] == "Filled" and half["side"] == "SELL"
    assert half["filled_qty"] == pytest.approx(round(qty / 2 - 0.00005, 4), abs=1e-4)
    rest = trader.market_sell("BTC/USD")
    assert rest["filled_qty"] == pytest.approx(qty - half["filled_qty"])
    assert book(tsim) == {}
    with pytest.raises(NoPositionError):
        trader.market_sell("BTC-USD", 100)


def test_usd_amount_below_one_share_sends_nothing(trader, tsim):
    with pytest.raises(OrderSizeError):
        trader.market_buy("MSFT", 5)
    assert tsim.sim.order_count == 0


def test_limit_order_rests_then_fills_when_price_crosses(trader, tsim, wait_status):
    price = trader.client.price("ETH-USD")
    result = trader.limit_buy("ETH-USD", 1000, round(price * 0.9, 2))
    assert result["success"] is True and result["status"] in ("Submitted", "PreSubmitted")
    assert result["filled_qty"] == 0
    opened = trader.get_open_orders()
    assert [o["client_order_id"] for o in opened] == [result["client_order_id"]]
    assert opened[0]["order_type"] == "LMT" and opened[0]["symbol"] == "ETH-USD"
    tsim.set_price("ETH", price * 0.85)
    assert wait_status(trader, result["client_order_id"], {"Filled"}) == "Filled"
    assert trader.get_open_orders() == []


def test_limit_sell_and_cancel_order(trader, tsim, sim_open_orders):
    trader.market_buy("LTC-USD", 500)
    price = trader.client.price("LTC-USD")
    resting = trader.limit_sell("LTC-USD", 100, round(price * 1.5, 2), tif="GTC")
    assert resting["status"] in ("Submitted", "PreSubmitted")
    cancelled = trader.cancel_order(resting["order_id"])
    assert cancelled["success"] is True and cancelled["status"] == "Cancelled"
    assert sim_open_orders(tsim) == []
    again = trader.cancel_order(resting["order_id"])
    assert again["success"] is False and "Cancelled" in again["error"]
    unknown = trader.cancel_order(987654)
    assert unknown["success"] is False and unknown["status"] == "NotFound"


def test_cancel_by_client_order_id(trader, tsim):
    price = trader.client.price("BTC-USD")
    trader.place_order("BTC-USD", "BUY", 0.01, "LMT", limit_price=price * 0.5,
                       client_order_id="cx-1")
    result = trader.cancel_order("cx-1")
    assert result["success"] is True and result["client_order_id"] == "cx-1"


def test_stop_order_triggers(trader, tsim, wait_status):
    trader.market_buy("AAPL", 2000)
    price = trader.client.price("AAPL")
    stop = trader.place_order("AAPL", "SELL", 2, "STP", stop_price=round(price * 0.95, 2))
    assert stop["success"] is True and stop["status"] in ("Submitted", "PreSubmitted")
    tsim.set_price("AAPL", price * 0.9)
    assert wait_status(trader, stop["client_order_id"], {"Filled"}) == "Filled"


def test_trailing_stop_percent_and_amount(trader, tsim, wait_status, match_now):
    trader.market_buy("MSFT", 3000)
    price = trader.client.price("MSFT")
    pct = trader.place_order("MSFT", "SELL", 1, "TRAIL", trail_percent=5)
    amt = trader.place_order("MSFT", "SELL", 1, "TRAIL", trail_amount=round(price * 0.1, 2))
    assert pct["status"] in ("Submitted", "PreSubmitted")
    assert amt["status"] in ("Submitted", "PreSubmitted")
    tsim.set_price("MSFT", price * 1.1)  # the stop trails up ...
    match_now(tsim)
    tsim.set_price("MSFT", price * 1.1 * 0.94)  # ... and a 6% drop from the high hits the 5% trail
    assert wait_status(trader, pct["client_order_id"], {"Filled"}) == "Filled"
    open_ids = [o["client_order_id"] for o in trader.get_open_orders()]
    assert amt["client_order_id"] in open_ids  # the 10% trail is still waiting


def test_moc_and_loc_fill_at_the_close(trader, tsim, wait_status):
    price = trader.client.price("MSFT")
    moc = trader.place_order("MSFT", "BUY", 2, "MOC")
    loc = trader.place_order("MSFT", "BUY", 3, "LOC", limit_price=round(price * 1.2, 2))
    assert moc["status"] in ("Submitted", "PreSubmitted")
    assert loc["status"] in ("Submitted", "PreSubmitted")
    tsim.run_close()
    assert wait_status(trader, moc["client_order_id"], {"Filled"}) == "Filled"
    assert wait_status(trader, loc["client_order_id"], {"Filled"}) == "Filled"
    assert trader.get_position("MSFT")["quantity"] == 5


def test_midprice_fills_at_the_mid(trader, tsim, wait_status):
    result = trader.place_order("AAPL", "BUY", 4, "MIDPRICE")
    assert result["success"] is True
    assert wait_status(trader, result["client_order_id"], {"Filled"}) == "Filled"
    assert trader.get_position("AAPL")["quantity"] == 4


def test_fx_market_buy_in_base_units(trader, tsim):
    result = trader.market_buy("EURUSD", 5000)
    assert result["status"] == "Filled"
    price = trader.client.price("EURUSD")
    assert result["filled_qty"] == pytest.approx(5000 / price, abs=2)


def test_wait_false_returns_after_sending(trader, tsim, wait_status):
    result = trader.market_buy("BTC-USD", 500, wait=False)
    assert result["success"] is True
    assert wait_status(trader, result["client_order_id"], {"Filled"}) == "Filled"


def test_broker_rejection_has_code_and_message(tsim, make_client):
    # Crypto cannot be sold short at PAXOS: the simulator rejects it with 201.
    trader = make_client(tsim, max_position_usd=1e9, max_exposure_usd=1e9).trading
    with pytest.raises(OrderRejectedError) as err:
        trader.place_order("BTC-USD", "SELL", 0.5)
    assert err.value.code == 201
    assert err.value.result["success"] is False
    assert err.value.result["code"] == 201
    assert "Short sales" in err.value.result["error"]
    assert tsim.sim.order_count == 1


def test_place_order_quantity_must_fit_the_size_increment(trader, tsim):
    with pytest.raises(ValueError, match="multiple of"):
        trader.place_order("AAPL", "BUY", 1.5)
    with pytest.raises(ValueError, match="multiple of"):
        trader.place_order("BTC-USD", "BUY", 0.00001)
    assert tsim.sim.order_count == 0


def test_positions_account_and_reconcile(trader, tsim):
    trader.market_buy("AAPL", 1000)
    trader.market_buy("ETH-USD", 1000)
    rows = {p["symbol"]: p for p in trader.get_all_positions()}
    assert set(rows) == {"AAPL", "ETH-USD"}
    assert trader.get_account_value() > 900_000
    assert 0 < trader.get_balance() <= trader.get_account_value()
    aapl = rows["AAPL"]["quantity"]
    same = trader.reconcile_positions({"AAPL": aapl, "ETH-USD": rows["ETH-USD"]["quantity"]})
    assert same["matched"] is True and same["differences"] == []
    off = trader.reconcile_positions({"aapl": aapl + 1, "MSFT": 3})
    kinds = {d["symbol"]: d["kind"] for d in off["differences"]}
    assert off["matched"] is False
    assert kinds == {"AAPL": "quantity_mismatch", "MSFT": "missing_at_broker",
                     "ETH-USD": "unexpected_at_broker"}
    assert tsim.sim.order_count == 2  # reconciliation only reads


def test_stop_limit_order_triggers_then_fills_within_its_limit(trader, tsim, wait_status):
    trader.market_buy("AAPL", 2000)
    price = trader.client.price("AAPL")
    stop, limit = round(price * 0.95, 2), round(price * 0.93, 2)
    order = trader.place_order("AAPL", "SELL", 2, "STP LMT", stop_price=stop, limit_price=limit)
    assert order["success"] is True and order["status"] in ("Submitted", "PreSubmitted")
    assert order["order_type"] == "STP LMT"
    [row] = trader.get_open_orders()
    assert (row["order_type"], row["stop_price"], row["limit_price"]) == ("STP LMT", stop, limit)
    tsim.set_price("AAPL", price * 0.94)  # through the stop, above the limit
    assert wait_status(trader, order["client_order_id"], {"Filled"}) == "Filled"


def test_stop_limit_on_the_wrong_side_sends_nothing(trader, tsim):
    with pytest.raises(ValueError, match="a SELL STP LMT needs limit_price <= stop_price"):
        trader.place_order("AAPL", "SELL", 1, "STP LMT", stop_price=100.0, limit_price=101.0)
    assert tsim.sim.order_count == 0
