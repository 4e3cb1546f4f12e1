"""Getting out: cancel_all, kill_switch, chunk_kill, close_position, emergency_stop."""

from __future__ import annotations

import pytest


def _resting(trader, symbol: str, side: str = "BUY", qty: float = 0.01) -> dict:
    price = trader.client.price(symbol)
    limit = round(price * (0.5 if side == "BUY" else 1.5), 2)
    return trader.place_order(symbol, side, qty, "LMT", limit_price=limit, tif="GTC")


def test_emergency_stop_leaves_nothing_and_is_safe_twice(tsim, make_client, book, sim_open_orders):
    trader = make_client(tsim).trading
    other = make_client(tsim).trading  # another agent on the same account
    trader.market_buy("BTC-USD", 2_000)
    trader.market_buy("ETH-USD", 1_000)
    trader.market_buy("AAPL", 1_500)
    trader.place_order("MSFT", "SELL", 3)  # a short
    _resting(trader, "LTC-USD")
    _resting(trader, "AAPL", "SELL", 1)
    _resting(other, "BCH-USD")
    assert len(sim_open_orders(tsim)) == 3 and len(book(tsim)) == 4

    result = trader.emergency_stop()
    assert result["success"] is True, result["error"]
    assert result["cancelled_orders"] == 3
    assert {c["symbol"] for c in result["closed"]} == {"BTC-USD", "ETH-USD", "AAPL", "MSFT"}
    assert all(c["status"] == "Filled" for c in result["closed"])
    assert sim_open_orders(tsim) == [] and book(tsim) == {}
    assert trader.get_open_orders() == [] and trader.get_all_positions() == []

    count = tsim.sim.order_count
    second = trader.emergency_stop()
    assert second["success"] is True and second["closed"] == [] and second["cancelled_orders"] == 0
    assert tsim.sim.order_count == count


def test_cancel_all_cancels_every_clients_orders(tsim, make_client, sim_open_orders):
    trader = make_client(tsim).trading
    other = make_client(tsim).trading
    _resting(trader, "BTC-USD")
    _resting(other, "ETH-USD")
    assert len(trader.get_open_orders()) == 2
    result = trader.cancel_all()
    assert result == {"success": True, "cancelled": 2, "remaining": [], "error": None}
    assert sim_open_orders(tsim) == []


def test_kill_switch_cancels_the_symbols_orders_and_flattens(
    tsim, make_client, book, sim_open_orders
):
    trader = make_client(tsim).trading
    trader.market_buy("ETH-USD", 1_500)
    _resting(trader, "ETH-USD", "SELL", 0.1)
    _resting(trader, "ETH-USD")
    keep = _resting(trader, "BTC-USD")
    result = trader.kill_switch("ETH-USD")
    assert result["success"] is True and result["status"] == "Filled" and result["side"] == "SELL"
    assert result["cancelled_orders"] == 2 and result["uncancelled"] == []
    assert "ETH-USD" not in book(tsim)
    assert [o["client_order_id"] for o in sim_open_orders(tsim)] == [keep["client_order_id"]]
    flat = trader.kill_switch("ETH-USD")
    assert flat["success"] is True and flat["status"] == "NoPosition"


def test_kill_switch_covers_a_short(tsim, make_client, book):
    trader = make_client(tsim).trading
    trader.place_order("TSLA", "SELL", 4)
    result = trader.kill_switch("TSLA")
    assert result["side"] == "BUY" and result["filled_qty"] == 4
    assert book(tsim) == {}


def test_chunk_kill_sells_in_usd_sized_children(tsim, make_client, book):
    trader = make_client(tsim).trading
    trader.market_buy("AAPL", 4_000)
    held = trader.get_position("AAPL")
    price = held["current_price"]
    result = trader.chunk_kill("AAPL", 1_000, 0.5)
    per_child = int(1_000 // price)
    assert result["success"] is True and result["remaining_qty"] == 0
    assert result["filled_qty"] == held["quantity"]
    assert len(result["chunks"]) == -(-int(held["quantity"]) // per_child)
    assert all(c["quantity"] <= per_child for c in result["chunks"])
    assert book(tsim) == {}


def test_chunk_kill_without_size_is_one_order_and_flat_is_a_noop(tsim, make_client):
    trader = make_client(tsim).trading
    trader.market_buy("BTC-USD", 1_000)
    result = trader.chunk_kill("BTC-USD")
    assert result["success"] is True and len(result["chunks"]) == 1
    count = tsim.sim.order_count
    nothing = trader.chunk_kill("BTC-USD", 100)
    assert nothing["success"] is True and nothing["chunks"] == []
    assert tsim.sim.order_count == count


def test_close_position_leaves_orders_alone(tsim, make_client, book, sim_open_orders):
    trader = make_client(tsim).trading
    assert trader.close_position("AAPL")["status"] == "NoPosition"
    assert tsim.sim.order_count == 0
    trader.market_buy("LTC-USD", 800)
    _resting(trader, "LTC-USD")
    result = trader.close_position("LTC-USD")
    assert result["status"] == "Filled"
    assert book(tsim) == {} and len(sim_open_orders(tsim)) == 1


@pytest.mark.parametrize("symbol", ["EURUSD", "USDJPY"])
def test_fx_positions_close(tsim, make_client, book, symbol):
    trader = make_client(tsim).trading
    trader.market_buy(symbol, 3_000)
    assert trader.get_token_balance_usd(symbol) == pytest.approx(3_000, rel=0.02)
    assert trader.close_position(symbol)["status"] == "Filled"
    assert book(tsim) == {}


@pytest.mark.parametrize("how", ["emergency_stop", "kill_switch", "chunk_kill"])
def test_concurrent_flattening_closes_a_position_once(tsim, make_client, book, how):
    # Review regression: two threads flattening at once both read the position
    # and both sent a closing order, reversing it (AAPL 6 -> -6).
    import threading

    trader = make_client(tsim).trading
    trader.market_buy("AAPL", 1_500)
    assert book(tsim).get("AAPL", 0) > 0
    go = threading.Barrier(2, timeout=10)
    results: list = []

    def flatten() -> None:
        go.wait()
        if how == "emergency_stop":
            results.append(trader.emergency_stop())
        elif how == "kill_switch":
            results.append(trader.kill_switch("AAPL"))
        else:
            results.append(trader.chunk_kill("AAPL", max_order_size=500))

    threads = [threading.Thread(target=flatten, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 2
    assert book(tsim) == {}, "the position was closed twice (reversed)"
    assert all(r["success"] for r in results), results
