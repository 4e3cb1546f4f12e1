"""Order failover to the Client Portal (``order_failover``): never off by default, never twice.

Every test runs the TWS simulator and the Client Portal simulator that shares
its market and order book (``run_simulator(portal=True)``), over real HTTPS
with the simulator's generated CA. The simulator's ``order_count`` counts
orders from both APIs, so "nothing was sent twice" is read straight off it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import ib_nice_funcs as n
from ib_nice_funcs import Client
from ib_nice_funcs.errors import (
    ConnectionFailedError,
    LiveTradingDisabledError,
    RequestTimeoutError,
    RiskLimitError,
    TradingHaltedError,
)
from ib_nice_funcs.portal.http import Guards, set_gateway_guards
from ib_nice_funcs.portal.throttle import EndpointLimit, PenaltyBox, Throttle

#: The simulators and this process's throttle run FAST times faster than IB's
#: limits (same rules, shorter waits): live orders 4 per second instead of 1 per 5 s.
FAST = 20.0
PLACE = "POST /iserver/account/{acct}/orders"


def _fast(portal: Any, factor: float = FAST) -> None:
    portal.set_rate_limits({
        "global": (10 * factor, 1.0), "/iserver/marketdata/snapshot": (10 * factor, 1.0),
        "/tickle": (factor, 1.0), "/iserver/account/orders": (factor, 5.0),
        "/portfolio/accounts": (factor, 5.0)})
    limits = {"snapshot": EndpointLimit(10 * factor, 1.0), "history": EndpointLimit(concurrent=5),
              "tickle": EndpointLimit(factor, 1.0), "live_orders": EndpointLimit(factor, 5.0),
              "portfolio_accounts": EndpointLimit(factor, 5.0)}
    set_gateway_guards(portal.url, Guards(Throttle(10 * factor, limits), PenaltyBox()))


def _start(sim_factory: Callable[..., Any], **kwargs: Any) -> Any:
    handle = sim_factory(portal=True, **kwargs)
    _fast(handle.portal)
    handle.market.set_price("BTC", 50_000.0)  # 500 USD buys exactly 0.01 BTC
    return handle


@pytest.fixture
def both(sim_factory):
    """TWS + Client Portal simulators on one paper account (DU...), market open."""
    return _start(sim_factory)


@pytest.fixture
def make(new_client_id) -> Iterator[Callable[..., Client]]:
    """``make(handle, **settings)``: a Client on both APIs, order failover on by default."""
    made: list[Client] = []

    def build(handle: Any, **settings: Any) -> Client:
        values: dict[str, Any] = {
            "host": "127.0.0.1", "port": handle.port, "client_id": new_client_id(),
            "sources": "ib,portal", "portal_url": handle.portal.url,
            "portal_ca": handle.portal.ca_path, "timeout": 10, "order_failover": True,
            "clock": handle.market.clock}
        values.update(settings)
        client = Client(**values)
        made.append(client)
        return client

    yield build
    for client in made:
        client.close()


def placed_over_rest(handle: Any) -> int:
    return handle.portal.request_counts()[PLACE]


def reconnected(client: Client) -> threading.Event:
    """An event set when the client's TWS connection is (re-)established."""
    event = threading.Event()

    async def hook(ib: Any) -> None:
        event.set()

    client.gateway.on_connected.append(hook)
    return event


# -- failover off: nothing changes -------------------------------------------------------


def test_failover_off_refuses_orders_when_tws_is_refused(both, new_client_id, caplog):
    caplog.set_level("WARNING", logger="ib_nice_funcs")
    both.set_refuse_new(True)
    n.configure(host="127.0.0.1", port=both.port, client_id=new_client_id(),
                sources="ib,portal", portal_url=both.portal.url, portal_ca=both.portal.ca_path,
                timeout=10, clock=both.market.clock)
    result = n.market_buy("BTC-USD", 500, client_order_id="off-1")
    assert result["success"] is False and result.get("source") != "portal"
    assert "connection refused" in result["error"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "BTC-USD" in warnings[0].getMessage()
    assert n.get_open_orders() == []  # no failover for account calls either
    assert both.sim.order_count == 0 and placed_over_rest(both) == 0


def test_failover_off_trader_raises_connection_failed(both, make):
    trader = make(both, order_failover=False).trading
    both.set_refuse_new(True)
    with pytest.raises(ConnectionFailedError):
        trader.place_order("BTC-USD", "BUY", 0.01, client_order_id="off-2")
    with pytest.raises(ConnectionFailedError):
        trader.get_all_positions()
    assert both.sim.order_count == 0 and placed_over_rest(both) == 0


# -- failover on -----------------------------------------------------------------------------


def test_market_order_fails_over_with_its_client_order_id(both, make):
    trader = make(both).trading
    both.set_refuse_new(True)  # TWS / IB Gateway is not running
    result = trader.market_buy("BTC-USD", 500, client_order_id="fo-mkt")
    assert result["success"] is True and result["source"] == "portal"
    assert result["client_order_id"] == "fo-mkt" and result["status"] == "Filled"
    assert result["filled_qty"] == pytest.approx(0.01)
    assert both.sim.order_count == 1 and placed_over_rest(both) == 1
    # The same id while TWS is still down: the order that exists, nothing sent.
    again = trader.market_buy("BTC-USD", 500, client_order_id="fo-mkt")
    assert again["existing"] is True and again["order_id"] == result["order_id"]
    assert both.sim.order_count == 1 and placed_over_rest(both) == 1
    # Positions and account values come from the portal meanwhile.
    pos = trader.get_position("BTC-USD")
    assert pos["has_position"] and pos["quantity"] == pytest.approx(0.01)
    assert pos["source"] == "portal"
    assert trader.get_account_value() > 0 and trader.get_balance() > 0

    # TWS is back; an agent restarted on it (no failover, no memory of the order)
    # finds the REST order by its orderRef among the gateway's executions.
    both.set_refuse_new(False)
    restarted = make(both, order_failover=False).trading
    repeat = restarted.market_buy("BTC-USD", 500, client_order_id="fo-mkt")
    assert repeat["existing"] is True and repeat["status"] == "Filled"
    assert repeat["filled_qty"] == pytest.approx(0.01) and repeat.get("source") != "portal"
    assert both.sim.order_count == 1 and placed_over_rest(both) == 1


def test_resting_order_fails_over_after_a_drop_and_tws_finds_it_when_back(both, make):
    client = make(both)
    trader = client.trading
    assert trader.get_open_orders() == []  # connected over TWS
    back = reconnected(client)
    both.set_refuse_new(True)
    both.drop_connections()
    placed = trader.place_order("BTC-USD", "BUY", 0.01, "LMT", limit_price=40_000.0,
                                client_order_id="fo-rest")
    assert placed["success"] and placed["source"] == "portal"
    assert placed["status"] in ("Submitted", "PreSubmitted")
    assert [o["client_order_id"] for o in trader.get_open_orders()] == ["fo-rest"]
    assert both.sim.order_count == 1

    both.set_refuse_new(False)
    assert back.wait(15), "the client did not reconnect to TWS"
    again = trader.place_order("BTC-USD", "BUY", 0.01, "LMT", limit_price=40_000.0,
                               client_order_id="fo-rest")
    # Found over TWS (the gateway's open orders carry orderRef = cOID), not re-placed.
    assert again["existing"] is True and again.get("source") != "portal"
    assert again["perm_id"] == placed["order_id"] and again["client_order_id"] == "fo-rest"
    assert both.sim.order_count == 1 and placed_over_rest(both) == 1
    assert trader.cancel_order("fo-rest")["success"] is False  # another client's order over TWS
    assert trader.cancel_all()["success"] is True


def test_open_orders_and_cancel_fail_over(both, make):
    trader = make(both).trading
    both.set_refuse_new(True)
    placed = trader.limit_buy("BTC-USD", 400, 40_000.0, client_order_id="fo-cxl")
    assert placed["success"] and placed["source"] == "portal"
    assert placed["quantity"] == pytest.approx(0.01)
    [row] = trader.get_open_orders()
    assert row["client_order_id"] == "fo-cxl" and row["source"] == "portal"
    assert trader.cancel_order(placed["order_id"])["success"] is True  # the portal's id
    assert trader.get_open_orders() == []
    tws_only = trader.cancel_order(12345)  # a TWS order id the portal cannot map
    assert tws_only["success"] is False and "client order id" in tws_only["error"]
    assert both.sim.order_count == 1


def test_two_threads_with_one_id_send_one_portal_order(both, make):
    from concurrent.futures import ThreadPoolExecutor

    trader = make(both).trading
    both.set_refuse_new(True)

    def buy(_: int) -> dict[str, Any]:
        return trader.market_buy("BTC-USD", 500, client_order_id="fo-race")

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(buy, range(3)))
    assert len({r["order_id"] for r in results}) == 1
    assert sum(1 for r in results if r.get("existing")) == 2
    assert both.sim.order_count == 1 and placed_over_rest(both) == 1


def test_a_hung_gateway_before_the_send_fails_over(both, make):
    trader = make(both, timeout=4).trading
    assert trader.get_open_orders() == []
    both.set_blackhole(True)  # connected, but nothing is answered any more
    result = trader.place_order("BTC-USD", "BUY", 0.01, "LMT", limit_price=40_000.0,
                                client_order_id="fo-hung")
    # TWS never got a placeOrder (its checks before sending timed out), so the portal may.
    assert result["success"] and result["source"] == "portal" and not result.get("existing")
    assert both.sim.order_count == 1 and placed_over_rest(both) == 1


def test_module_level_order_fails_over(both, new_client_id):
    both.set_refuse_new(True)
    n.configure(host="127.0.0.1", port=both.port, client_id=new_client_id(),
                sources="ib,portal", portal_url=both.portal.url, portal_ca=both.portal.ca_path,
                timeout=10, order_failover=True, clock=both.market.clock)
    result = n.market_buy("BTC-USD", 500)
    assert result["success"] is True and result["source"] == "portal"
    assert result["client_order_id"].startswith("inf-")
    assert n.get_position("BTC-USD")["quantity"] == pytest.approx(0.01)
    assert both.sim.order_count == 1


# -- the same safety rules as TWS orders -------------------------------------------------------


def test_risk_limits_apply_to_portal_orders(both, make):
    trader = make(both, max_position_usd=800).trading
    both.set_refuse_new(True)
    with pytest.raises(RiskLimitError) as refused:
        trader.market_buy("BTC-USD", 1_000)
    assert refused.value.breach.limit == "max_position_usd"
    assert both.sim.order_count == 0 and placed_over_rest(both) == 0
    assert trader.market_buy("BTC-USD", 500)["source"] == "portal"
    # The portal's positions (plus the fill they may not show yet) count for the next one.
    with pytest.raises(RiskLimitError):
        trader.market_buy("BTC-USD", 500)
    assert both.sim.order_count == 1 and placed_over_rest(both) == 1


def test_live_guard_uses_the_portal_accounts_paper_flag(sim_factory, make):
    live = _start(sim_factory, account="U7654321")  # isPaper is false
    live.set_refuse_new(True)
    with pytest.raises(LiveTradingDisabledError, match="U7654321"):
        make(live).trading.market_buy("BTC-USD", 500)
    assert live.sim.order_count == 0 and placed_over_rest(live) == 0
    allowed = make(live, allow_live=True).trading.market_buy("BTC-USD", 500)
    assert allowed["success"] and allowed["source"] == "portal"
    assert live.sim.order_count == 1


# -- TWS fails after the order may have been sent -----------------------------------------------


def _hang_on_place(monkeypatch, handle: Any, *, deliver: bool) -> None:
    """The TWS gateway goes silent on the next order: after taking it, or before."""
    from ib_nice_funcs.sim import tws as tws_module

    original = tws_module._HANDLERS[3]

    async def place(sim: Any, conn: Any, fields: Any) -> None:
        sim.blackhole = True  # every open connection: no acknowledgement comes back
        if deliver:
            await original(sim, conn, fields)

    monkeypatch.setitem(tws_module._HANDLERS, 3, place)


def test_tws_timeout_then_failover_finds_the_order(both, make, monkeypatch):
    trader = make(both, timeout=4).trading
    assert trader.get_open_orders() == []
    _hang_on_place(monkeypatch, both, deliver=True)
    result = trader.market_buy("BTC-USD", 500, client_order_id="fo-late")
    # TWS took it and never said so; the portal lists it, so it is returned, not re-placed.
    assert result["success"] is True and result["existing"] is True
    assert result["source"] == "portal" and result["status"] == "Filled"
    assert both.sim.order_count == 1 and placed_over_rest(both) == 0


def test_tws_timeout_with_the_order_nowhere_is_not_placed_blindly(both, make, monkeypatch):
    trader = make(both, timeout=4).trading
    assert trader.get_open_orders() == []
    _hang_on_place(monkeypatch, both, deliver=False)
    with pytest.raises(RequestTimeoutError) as unknown:
        trader.market_buy("BTC-USD", 500, client_order_id="fo-lost")
    assert unknown.value.result["status"] == "Unknown"
    assert "fo-lost" in unknown.value.result["error"]
    # The TWS gateway may still deliver it, so the portal did not place it.
    assert both.sim.order_count == 0 and placed_over_rest(both) == 0


# -- getting out: cancel_all, kill_switch, close_position, emergency_stop ---------------------


def _deletes(handle: Any) -> int:
    return sum(n for key, n in handle.portal.request_counts().items() if key.startswith("DELETE"))


def test_emergency_stop_fails_over_cancels_and_flattens_twice_safely(both, make):
    # A resting order another client placed over TWS before the outage.
    other = make(both, order_failover=False).trading
    assert other.place_order("BTC-USD", "BUY", 0.01, "LMT", limit_price=39_000.0,
                             client_order_id="es-tws")["success"]
    client = make(both)
    trader = client.trading
    both.set_refuse_new(True)
    both.drop_connections()
    assert trader.market_buy("BTC-USD", 500, client_order_id="es-buy")["source"] == "portal"
    assert trader.place_order("BTC-USD", "BUY", 0.01, "LMT", limit_price=40_000.0,
                              client_order_id="es-rest")["source"] == "portal"
    assert both.sim.order_count == 3

    stop = trader.emergency_stop()
    assert stop["success"] is True and stop["source"] == "portal", stop["error"]
    assert stop["cancelled_orders"] == 2
    [closed] = stop["closed"]
    assert closed["success"] and closed["status"] == "Filled" and closed["side"] == "SELL"
    assert closed["filled_qty"] == pytest.approx(0.01) and closed["source"] == "portal"
    assert closed["client_order_id"] not in ("es-buy", "es-rest")
    assert stop["remaining_orders"] == [] and stop["remaining_positions"] == {}
    portal = client.source("portal")
    assert portal.open_orders() == []
    assert [p for p in portal.positions() if p["symbol"] == "BTC-USD"] == []
    assert both.sim.order_count == 4

    again = trader.emergency_stop()  # nothing open, nothing held: nothing sent
    assert again["success"] is True and again["closed"] == [] and again["cancelled_orders"] == 0
    assert both.sim.order_count == 4

    both.set_refuse_new(False)  # TWS is back: a fresh client sees the same
    fresh = make(both, order_failover=False).trading
    assert fresh.get_open_orders() == [] and fresh.get_all_positions() == []


def test_the_fleet_halt_holds_for_orders_through_the_portal(both, make):
    client = make(both)
    trader = client.trading
    assert trader.market_buy("BTC-USD", 500, client_order_id="halt-tws")["success"]
    both.set_refuse_new(True)
    both.drop_connections()
    trader.get_open_orders()  # fails over: the client has noticed the drop
    assert trader.emergency_stop()["source"] == "portal"
    count = both.sim.order_count
    with pytest.raises(TradingHaltedError, match="halted"):
        trader.market_buy("BTC-USD", 500, client_order_id="halt-portal")
    assert both.sim.order_count == count
    assert trader.resume_trading()["was_halted"] is True
    assert trader.market_buy("BTC-USD", 500, client_order_id="halt-portal")["source"] == "portal"


def test_kill_switch_close_position_and_cancel_all_fail_over(both, make):
    trader = make(both).trading
    both.set_refuse_new(True)
    assert trader.market_buy("BTC-USD", 500)["source"] == "portal"
    assert trader.limit_buy("BTC-USD", 400, 40_000.0)["source"] == "portal"
    killed = trader.kill_switch("BTC-USD")
    assert killed["success"] and killed["source"] == "portal" and killed["status"] == "Filled"
    assert killed["cancelled_orders"] == 1 and killed["uncancelled"] == []
    assert trader.get_open_orders() == []
    assert trader.close_position("BTC-USD")["status"] == "NoPosition"

    assert trader.market_buy("BTC-USD", 500)["source"] == "portal"
    closed = trader.close_position("BTC-USD")
    assert closed["status"] == "Filled" and closed["filled_qty"] == pytest.approx(0.01)
    assert not trader.get_position("BTC-USD")["has_position"]

    assert trader.limit_buy("BTC-USD", 400, 40_000.0)["source"] == "portal"
    cancelled = trader.cancel_all()
    assert cancelled["success"] and cancelled["cancelled"] == 1 and cancelled["remaining"] == []
    assert cancelled["source"] == "portal" and trader.get_open_orders() == []
    assert both.sim.order_count == 6 and _deletes(both) == 2


def test_getting_out_with_failover_off_fails_and_sends_nothing(both, make):
    trader = make(both, order_failover=False).trading
    both.set_refuse_new(True)
    for call in (trader.emergency_stop, trader.cancel_all,
                 lambda: trader.kill_switch("BTC-USD"),
                 lambda: trader.close_position("BTC-USD")):
        with pytest.raises(ConnectionFailedError):
            call()
    assert both.sim.order_count == 0 and placed_over_rest(both) == 0 and _deletes(both) == 0


def test_stop_limit_order_fails_over_to_the_portal(both, make):
    trader = make(both).trading
    both.set_refuse_new(True)
    placed = trader.place_order("BTC-USD", "BUY", 0.01, "STP LMT", stop_price=60_000.0,
                                limit_price=61_000.0, client_order_id="fo-stplmt")
    assert placed["success"] is True and placed["source"] == "portal"
    assert placed["status"] in ("Submitted", "PreSubmitted")
    [row] = trader.get_open_orders()
    assert row["client_order_id"] == "fo-stplmt" and row["order_type"] == "STP LMT"
    assert (row["stop_price"], row["limit_price"]) == (60_000.0, 61_000.0)
    assert both.sim.order_count == 1 and placed_over_rest(both) == 1
    with pytest.raises(ValueError, match="a BUY STP LMT needs limit_price >= stop_price"):
        trader.place_order("BTC-USD", "BUY", 0.01, "STP LMT", stop_price=60_000.0,
                           limit_price=59_000.0)
    assert both.sim.order_count == 1
    assert trader.cancel_order("fo-stplmt")["success"] is True
