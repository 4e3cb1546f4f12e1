"""Risk limits, the live-account guard and bad input: nothing may reach the simulator."""

from __future__ import annotations

import math

import pytest

import ib_nice_funcs as n
from ib_nice_funcs.errors import LiveTradingDisabledError, RiskLimitError

# -- risk limits ------------------------------------------------------------------------------


def test_max_position_blocks_with_zero_orders(tsim, make_client):
    trader = make_client(tsim, max_position_usd=1_000).trading
    with pytest.raises(RiskLimitError) as err:
        trader.market_buy("BTC-USD", 2_000)
    breach = err.value.breach
    assert breach.limit == "max_position_usd" and breach.limit_value == 1_000
    assert breach.requested == pytest.approx(2_000, rel=0.01)
    assert "max_position_usd" in str(err.value) and "nothing was sent" in str(err.value)
    assert tsim.sim.order_count == 0


def test_max_position_counts_the_existing_position(tsim, make_client):
    trader = make_client(tsim, max_position_usd=3_000).trading
    trader.market_buy("AAPL", 2_000)
    before = tsim.sim.order_count
    with pytest.raises(RiskLimitError, match="max_position_usd"):
        trader.market_buy("AAPL", 1_500)
    assert tsim.sim.order_count == before
    # Reducing the position is always allowed.
    assert trader.market_sell("AAPL", 50)["success"] is True


def test_max_exposure_blocks_with_zero_orders(tsim, make_client):
    trader = make_client(tsim, max_position_usd=5_000, max_exposure_usd=3_000).trading
    trader.market_buy("BTC-USD", 2_000)
    before = tsim.sim.order_count
    with pytest.raises(RiskLimitError) as err:
        trader.limit_buy("ETH-USD", 2_000, trader.client.price("ETH-USD"))
    assert err.value.breach.limit == "max_exposure_usd"
    assert err.value.breach.limit_value == 3_000
    assert tsim.sim.order_count == before


def test_max_daily_loss_blocks_with_zero_orders(tsim, make_client):
    trader = make_client(tsim, max_daily_loss_usd=200).trading
    price = trader.client.price("BTC-USD")
    trader.market_buy("BTC-USD", 5_000)  # the first risk snapshot records the day's baseline
    tsim.set_price("BTC", price * 0.8)  # about -$1,000 on the position
    # A reducing order is still allowed; its fill also refreshes the account values.
    assert trader.market_sell("BTC-USD", 10)["success"] is True
    before = tsim.sim.order_count
    with pytest.raises(RiskLimitError) as err:
        trader.market_buy("ETH-USD", 100)
    assert err.value.breach.limit == "max_daily_loss_usd"
    assert err.value.breach.requested > 200
    assert tsim.sim.order_count == before
    assert trader.kill_switch("BTC-USD")["success"] is True  # getting out still works


def test_pattern_day_trader_guard_blocks_with_zero_orders(sim_factory, make_client):
    small = sim_factory(cash=20_000)
    trader = make_client(small).trading
    for _ in range(3):  # three day trades in AAPL today
        trader.market_buy("AAPL", 1_000)
        trader.market_sell("AAPL")
    before = small.sim.order_count
    with pytest.raises(RiskLimitError) as err:
        trader.market_buy("MSFT", 1_000)
    assert err.value.breach.limit == "pattern_day_trader"
    assert small.sim.order_count == before
    # Crypto is not a security: the PDT rule does not apply to it.
    assert trader.market_buy("BTC-USD", 500)["success"] is True


def test_pdt_guard_can_be_switched_off(sim_factory, make_client):
    small = sim_factory(cash=20_000)
    trader = make_client(small, pdt_guard=False).trading
    for _ in range(3):
        trader.market_buy("AAPL", 1_000)
        trader.market_sell("AAPL")
    assert trader.market_buy("MSFT", 1_000)["success"] is True


def test_module_level_risk_breach_returns_failure_and_one_warning(
    tsim, warnings_log, new_client_id
):
    n.configure(host="127.0.0.1", port=tsim.port, client_id=new_client_id(), sources="ib",
                max_position_usd=100, clock=tsim.market.clock)
    result = n.market_buy("BTC-USD", 1_000, 50)  # nice_funcs passes slippage third
    assert result["success"] is False
    assert result["risk_limit"] == "max_position_usd"
    assert "max_position_usd" in result["error"]
    assert tsim.sim.order_count == 0
    records = [r for r in warnings_log.records if r.levelname == "WARNING"]
    assert len(records) == 1 and "BTC-USD" in records[0].getMessage()


# -- live-account guard ---------------------------------------------------------------------------


def test_live_account_refuses_orders_and_allows_data(sim_factory, make_client):
    live = sim_factory(account="U1234567")
    trader = make_client(live).trading
    for call in (lambda: trader.market_buy("BTC-USD", 100),
                 lambda: trader.place_order("AAPL", "BUY", 1, "LMT", limit_price=1.0),
                 lambda: trader.market_sell("BTC-USD"),
                 trader.cancel_all,
                 trader.emergency_stop,
                 lambda: trader.kill_switch("AAPL")):
        with pytest.raises(LiveTradingDisabledError) as err:
            call()
        assert "IB_NICE_FUNCS_ALLOW_LIVE=1" in str(err.value)
        assert "configure(allow_live=True)" in str(err.value)
    assert live.sim.order_count == 0
    assert live.request_counts().get("reqGlobalCancel", 0) == 0
    # Data calls are never blocked.
    assert trader.get_position("AAPL")["has_position"] is False
    assert trader.get_account_value() > 0
    assert trader.get_open_orders() == []


def test_live_account_with_allow_live_trades(sim_factory, make_client):
    live = sim_factory(account="U1234567")
    trader = make_client(live, allow_live=True).trading
    assert trader.market_buy("BTC-USD", 100)["success"] is True
    assert live.sim.order_count == 1


def test_configured_live_account_refused_before_connecting(make_client, sim_factory):
    handle = sim_factory(account="U7654321")
    trader = make_client(handle, account="U7654321").trading
    with pytest.raises(LiveTradingDisabledError):
        trader.market_buy("AAPL", 100)
    assert handle.sim.connections == 0


def test_module_level_live_guard(sim_factory, warnings_log, new_client_id):
    live = sim_factory(account="U1234567")
    n.configure(host="127.0.0.1", port=live.port, client_id=new_client_id(), sources="ib")
    result = n.market_buy("AAPL", 100)
    assert result["success"] is False and "IB_NICE_FUNCS_ALLOW_LIVE" in result["error"]
    assert live.sim.order_count == 0
    assert len([r for r in warnings_log.records if r.levelname == "WARNING"]) == 1
    n.configure(allow_live=True)
    assert n.market_buy("BTC-USD", 100)["success"] is True


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.place_order("AAPL", "HOLD", 1),
        lambda t: t.place_order("AAPL", "BUY", 1, "ICEBERG"),
        lambda t: t.place_order("AAPL", "BUY", math.nan),
        lambda t: t.place_order("AAPL", "BUY", -3),
        lambda t: t.place_order("AAPL", "BUY", 0),
        lambda t: t.place_order("AAPL", "BUY", 1, "LMT"),
        lambda t: t.place_order("AAPL", "BUY", 1, "STP"),
        lambda t: t.place_order("AAPL", "BUY", 1, "TRAIL"),
        lambda t: t.place_order("AAPL", "BUY", 1, tif="FOREVER"),
        lambda t: t.market_buy("AAPL", -100),
        lambda t: t.market_buy("AAPL", math.inf),
        lambda t: t.market_sell("AAPL", 0),
        lambda t: t.market_sell("AAPL", 101),
        lambda t: t.limit_sell("AAPL", 50, -1),
        lambda t: t.limit_buy("AAPL", 100, math.nan),
        lambda t: t.chunk_kill("AAPL", max_order_size=-5),
        lambda t: t.cancel_order(-1),
        lambda t: t.market_buy("", 100),
        lambda t: t.place_order("AAPL", "BUY", 1, client_order_id="has spaces"),
        lambda t: t.market_buy("AAPL", 100, wait="yes"),
        lambda t: t.place_order("AAPL", "BUY", 1, timeout=-1),
        lambda t: t.reconcile_positions({"AAPL": "ten"}),
        lambda t: t.get_position(42),
    ],
)
def test_bad_input_raises_before_anything_is_sent(tsim, make_client, call):
    trader = make_client(tsim).trading
    with pytest.raises((ValueError, TypeError)) as err:
        call(trader)
    assert str(err.value)
    assert tsim.sim.order_count == 0
    assert tsim.sim.connections == 0  # rejected before even connecting


def test_bad_input_propagates_from_module_level(tsim, new_client_id):
    n.configure(host="127.0.0.1", port=tsim.port, client_id=new_client_id(), sources="ib",
                clock=tsim.market.clock)
    with pytest.raises(ValueError, match="side"):
        n.place_order("AAPL", "HOLD", 1)
    with pytest.raises(ValueError, match="percentage"):
        n.market_sell("AAPL", 150)
    with pytest.raises(TypeError):
        n.market_buy("AAPL", "100")
    assert tsim.sim.order_count == 0
