"""The module-level nice_funcs trading functions: shapes, and never raising on failure."""

from __future__ import annotations

import math

import pytest

import ib_nice_funcs as n

ORDER_KEYS = {"success", "order_id", "client_order_id", "status", "filled_qty", "avg_price",
              "error"}
POSITION_KEYS = {"has_position", "quantity", "symbol", "avg_cost", "current_price", "market_value",
                 "unrealized_pnl", "unrealized_pnl_pct"}


@pytest.fixture
def module_sim(tsim, new_client_id):
    n.configure(host="127.0.0.1", port=tsim.port, client_id=new_client_id(), sources="ib",
                timeout=10, clock=tsim.market.clock)
    return tsim


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def test_nice_funcs_agent_flow(module_sim, book):
    bought = n.market_buy("BTC-USD", 1_000, 100)  # slippage is accepted and ignored
    assert ORDER_KEYS <= set(bought) and bought["success"] is True
    pos = n.get_position("BTC-USD")
    assert POSITION_KEYS <= set(pos) and pos["has_position"] is True
    assert n.get_token_balance_usd("BTC-USD") == pytest.approx(pos["market_value"])
    assert [p["symbol"] for p in n.get_all_positions()] == ["BTC-USD"]
    assert n.get_account_value() > 0 and n.get_balance() > 0
    assert n.reconcile_positions({"BTC-USD": pos["quantity"]})["matched"] is True
    limit = n.limit_buy("ETH-USD", 500, round(n.token_price("ETH-USD") * 0.5, 2))
    assert limit["success"] is True
    assert [o["order_id"] for o in n.get_open_orders()] == [limit["order_id"]]
    assert n.cancel_order(limit["order_id"])["success"] is True
    assert n.limit_sell("BTC-USD", 50, round(pos["current_price"] * 2, 2))["success"] is True
    assert n.cancel_all()["success"] is True
    assert n.market_sell("BTC-USD", 25)["success"] is True
    assert n.chunk_kill("BTC-USD", 200, 50)["success"] is True
    assert n.get_position("BTC-USD")["has_position"] is False
    placed = n.place_order("AAPL", "BUY", 2, "LMT", limit_price=1.0)
    assert placed["success"] is True and placed["order_type"] == "LMT"
    assert n.kill_switch("AAPL")["status"] == "NoPosition"
    n.market_buy("AAPL", 500)
    assert n.close_position("AAPL")["success"] is True
    stop = n.emergency_stop()
    assert stop["success"] is True
    assert book(module_sim) == {}


def test_gateway_down_never_raises_and_warns_once_per_call(tsim, new_client_id, caplog):
    caplog.set_level("WARNING", logger="ib_nice_funcs")
    tsim.set_refuse_new(True)
    n.configure(host="127.0.0.1", port=tsim.port, client_id=new_client_id(), sources="ib",
                timeout=2, clock=tsim.market.clock)
    checks = [
        (lambda: n.market_buy("AAPL", 100),
         lambda r: r["success"] is False and ORDER_KEYS <= set(r)),
        (lambda: n.market_sell("AAPL"), lambda r: r["success"] is False),
        (lambda: n.limit_buy("AAPL", 100, 10), lambda r: r["success"] is False),
        (lambda: n.limit_sell("AAPL", 50, 10), lambda r: r["success"] is False),
        (lambda: n.place_order("AAPL", "BUY", 1, "MOC"), lambda r: r["success"] is False),
        (lambda: n.cancel_order(5), lambda r: r["success"] is False),
        (n.cancel_all, lambda r: r["success"] is False),
        (n.get_open_orders, lambda r: r == []),
        (lambda: n.get_position("AAPL"),
         lambda r: r["known"] is False and POSITION_KEYS <= set(r) and r["error"]),
        (n.get_all_positions, lambda r: r is None),
        (lambda: n.get_token_balance_usd("AAPL"), lambda r: math.isnan(r)),
        (n.get_account_value, lambda r: r == 0.0),
        (n.get_balance, lambda r: r == 0.0),
        (lambda: n.kill_switch("AAPL"), lambda r: r["success"] is False),
        (lambda: n.chunk_kill("AAPL", 100), lambda r: r["success"] is False),
        (lambda: n.close_position("AAPL"), lambda r: r["success"] is False),
        (n.emergency_stop, lambda r: r["success"] is False),
        (lambda: n.reconcile_positions({"AAPL": 1}), lambda r: r["success"] is False),
    ]
    for call, ok in checks:
        caplog.clear()
        result = call()
        assert ok(result), result
        got = warnings(caplog)
        assert len(got) == 1, got
        assert "TWS" in got[0] or "gateway" in got[0]
    assert tsim.sim.order_count == 0


def test_rejection_returns_code_at_module_level(module_sim, caplog):
    caplog.set_level("WARNING", logger="ib_nice_funcs")
    n.configure(max_position_usd=1e9, max_exposure_usd=1e9)
    result = n.place_order("BTC-USD", "SELL", 1)
    assert result["success"] is False and result["code"] == 201
    assert result["order_id"] and "Short sales" in result["error"]
    got = warnings(caplog)
    assert len(got) == 1 and "BTC-USD" in got[0]


def test_no_position_sell_is_a_soft_failure(module_sim, caplog):
    caplog.set_level("WARNING", logger="ib_nice_funcs")
    result = n.market_sell("ETH-USD")
    assert result["success"] is False and "no long position" in result["error"]
    assert len(warnings(caplog)) == 1
    assert module_sim.sim.order_count == 0


def test_concurrent_calls_from_threads(module_sim):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(6) as pool:
        buys = list(pool.map(lambda _: n.market_buy("BTC-USD", 200), range(4)))
        reads = list(pool.map(lambda _: n.get_all_positions(), range(6)))
        orders = list(pool.map(lambda _: n.get_open_orders(), range(6)))
    assert all(b["success"] and b["status"] == "Filled" for b in buys)
    assert len({b["order_id"] for b in buys}) == 4
    assert all(isinstance(r, list) and r for r in reads)
    assert all(o == [] for o in orders)
    assert module_sim.sim.order_count == 4
    total = sum(b["filled_qty"] for b in buys)
    assert n.get_position("BTC-USD")["quantity"] == pytest.approx(total)


def test_reported_failures_warn_once(module_sim, caplog):
    caplog.set_level("WARNING", logger="ib_nice_funcs")
    result = n.cancel_order(424242)
    assert result["success"] is False and result["status"] == "NotFound"
    got = warnings(caplog)
    assert len(got) == 1 and "424242" in got[0]
