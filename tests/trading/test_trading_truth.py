"""What the trading layer reports under faults is true (issue 8, part B1).

- An unknown position is never reported as flat.
- An order whose acknowledgement was lost is reported as filled (when its
  executions say so) or as unknown (``success`` None), never as failed; the
  next call with its client order id returns its real state and never places
  it twice.
- Bad input is a ValueError / TypeError before anything reaches the gateway.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import pytest

import ib_nice_funcs as n
from ib_nice_funcs.errors import (
    ConnectionFailedError,
    NonAsciiSymbolError,
    OrderRejectedError,
    PositionUnknownError,
    RequestTimeoutError,
)


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def low_price(trader, symbol: str = "AAPL") -> float:
    """A limit far below the market: the order rests."""
    return round(trader.client.price(symbol) * 0.5, 2)


@pytest.fixture
def module_sim(tsim, new_client_id):
    n.configure(host="127.0.0.1", port=tsim.port, client_id=new_client_id(), sources="ib",
                timeout=10, clock=tsim.market.clock)
    return tsim


# -- positions ---------------------------------------------------------------------------------


def test_unknown_position_stops_the_buy_if_flat_idiom(tsim, new_client_id, caplog):
    caplog.set_level("WARNING", logger="ib_nice_funcs")
    tsim.set_refuse_new(True)
    n.configure(host="127.0.0.1", port=tsim.port, client_id=new_client_id(), sources="ib",
                timeout=2, clock=tsim.market.clock)
    pos = n.get_position("AAPL")
    assert pos["known"] is False and pos["status"] == "unknown" and pos["error"]
    assert len(warnings(caplog)) == 1 and "AAPL" in warnings(caplog)[0]
    bought = []
    with pytest.raises(PositionUnknownError):
        if not pos["has_position"]:  # the agent's idiom
            bought.append(n.market_buy("AAPL", 100))
    assert bought == [] and tsim.sim.order_count == 0
    caplog.clear()
    assert n.get_all_positions() is None and len(warnings(caplog)) == 1
    balance = n.get_token_balance_usd("AAPL")
    assert math.isnan(balance)  # unknown: neither "holds nothing" nor a value to act on
    assert not (balance > 0 or balance == 0 or balance < 100) and f"{balance:.2f}" == "nan"
    assert n.reconcile_positions({"AAPL": 1})["actual"] is None


def test_client_raises_instead_of_reporting_flat(tsim, make_client):
    trader = make_client(tsim, timeout=2).trading
    tsim.set_refuse_new(True)
    with pytest.raises(ConnectionFailedError):
        trader.get_position("AAPL")
    with pytest.raises(ConnectionFailedError):
        trader.get_all_positions()


def test_known_positions_say_so(trader):
    trader.market_buy("AAPL", 1_000)
    held = trader.get_position("AAPL")
    assert held["known"] is True and held["has_position"] is True
    flat = trader.get_position("MSFT")
    assert flat["known"] is True and flat["has_position"] is False and flat["quantity"] == 0.0
    assert all(p["known"] is True for p in trader.get_all_positions())


# -- lost acknowledgements ------------------------------------------------------------------------


def test_lost_ack_of_a_filled_market_order_reports_the_fill(trader, tsim):
    tsim.drop_acks(True)
    result = trader.market_buy("AAPL", 1_000, client_order_id="lost-ack-mkt")
    # No orderStatus ever arrived; the executions did, and they are the truth.
    assert result["success"] is True and result["status"] == "Filled"
    assert result["filled_qty"] > 0 and result["avg_price"] > 0
    again = trader.market_buy("AAPL", 1_000, client_order_id="lost-ack-mkt")
    assert again["existing"] is True and again["order_id"] == result["order_id"]
    assert tsim.sim.order_count == 1


def test_lost_ack_of_a_resting_order_is_unknown_then_resolved_by_its_id(trader, tsim, book):
    price = low_price(trader)
    tsim.drop_acks(True)
    with pytest.raises(RequestTimeoutError) as err:
        trader.limit_buy("AAPL", 500, price, timeout=1.5)
    unknown = err.value.result
    coid = unknown["client_order_id"]
    assert unknown["success"] is None and unknown["status"] == "Unknown"
    assert coid and f"client_order_id={coid!r}" in unknown["error"]
    # The retry with that id asks the gateway: the order is working there.
    again = trader.limit_buy("AAPL", 500, price, client_order_id=coid)
    assert again["success"] is True and again["status"] in ("Submitted", "PreSubmitted")
    assert again["existing"] is True and again["client_order_id"] == coid
    assert tsim.sim.order_count == 1
    assert [o["client_order_id"] for o in trader.get_open_orders()] == [coid]


def test_an_unknown_order_that_filled_meanwhile_is_reported_filled(trader, tsim, book,
                                                                     match_now):
    price = low_price(trader)
    tsim.drop_acks(True)
    with pytest.raises(RequestTimeoutError) as err:
        trader.limit_buy("AAPL", 500, price, timeout=1.5)
    coid = err.value.result["client_order_id"]
    tsim.set_price("AAPL", round(price * 0.9, 2))  # the market comes down to the limit
    match_now(tsim)  # ... and the engine fills it now, unannounced
    got = trader.limit_buy("AAPL", 500, price, client_order_id=coid)
    assert got["success"] is True and got["status"] == "Filled" and got["existing"] is True
    assert tsim.sim.order_count == 1
    assert book(tsim)["AAPL"] == got["filled_qty"]


def test_an_order_cancelled_unannounced_is_reported_cancelled_by_its_id(trader, tsim):
    price = low_price(trader)
    tsim.drop_acks(True)
    with pytest.raises(RequestTimeoutError) as err:
        trader.limit_buy("AAPL", 500, price, timeout=1.5)
    coid = err.value.result["client_order_id"]
    cancel = trader.cancel_order(coid, timeout=1.5)  # IB never confirms it either
    assert cancel["success"] is False and "not confirmed" in cancel["error"]
    assert trader.get_open_orders() == []
    # The gateway's completed orders say what happened; nothing is sent again.
    with pytest.raises(OrderRejectedError) as again:
        trader.limit_buy("AAPL", 500, price, client_order_id=coid)
    assert again.value.result["status"] == "Cancelled" and again.value.result["existing"] is True
    assert tsim.sim.order_count == 1


def test_a_closing_order_with_a_lost_ack_is_reported_by_its_executions(trader, tsim, book):
    trader.market_buy("AAPL", 1_000)
    tsim.drop_acks(True)
    closed = trader.close_position("AAPL")
    assert closed["success"] is True and closed["status"] == "Filled"
    assert book(tsim) == {}


def test_a_call_cut_off_before_ib_answered_is_unknown_and_its_id_places_it_once(trader, tsim):
    price = low_price(trader)  # connected; the order's contract rules are not loaded yet
    tsim.sim.latency = 4.0  # every answer now comes after the call's 1 s timeout (+1 s grace)
    with pytest.raises(RequestTimeoutError) as err:
        trader.limit_buy("AAPL", 500, price, timeout=1)
    unknown = err.value.result  # cut off on our side: it might have been sent
    assert unknown["success"] is None and unknown["status"] == "Unknown"
    tsim.sim.latency = 0.0
    first = trader.limit_buy("AAPL", 500, price, client_order_id=unknown["client_order_id"])
    again = trader.limit_buy("AAPL", 500, price, client_order_id=unknown["client_order_id"])
    assert first["success"] is True and again["order_id"] == first["order_id"]
    assert tsim.sim.order_count == 1


def test_module_level_unknown_order_is_none_not_false(module_sim, caplog):
    caplog.set_level("WARNING", logger="ib_nice_funcs")
    price = round(n.token_price("AAPL") * 0.5, 2)
    module_sim.drop_acks(True)
    result = n.limit_buy("AAPL", 500, price, timeout=1.5)
    assert result["success"] is None and result["status"] == "Unknown"
    coid = result["client_order_id"]
    got = warnings(caplog)
    assert len(got) == 1 and coid in got[0] and "outcome unknown" in got[0]
    retried = n.limit_buy("AAPL", 500, price, client_order_id=coid)
    assert retried["success"] is True and retried["existing"] is True
    assert module_sim.sim.order_count == 1


def test_many_threads_with_lost_acks_never_report_a_filled_order_as_failed(trader, tsim, book):
    tsim.drop_acks(True)
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: _safe_buy(trader), range(12)))
    assert all(r["success"] is not False for r in results), results
    for r in results:
        if r["success"] is None:  # unknown: the retry with its id tells, and sends nothing
            r.update(trader.market_buy("AAPL", 500, client_order_id=r["client_order_id"]))
    assert all(r["status"] == "Filled" for r in results)
    assert tsim.sim.order_count == 12
    assert book(tsim)["AAPL"] == pytest.approx(sum(r["filled_qty"] for r in results))


def _safe_buy(trader) -> dict:
    try:
        return trader.market_buy("AAPL", 500, timeout=2)
    except RequestTimeoutError as exc:
        return dict(exc.result)


def test_a_restarted_agent_finds_a_completed_order_by_its_id(tsim, make_client):
    first = make_client(tsim).trading
    placed = first.market_buy("AAPL", 1_000, client_order_id="restart-1")
    first.client.close()
    second = make_client(tsim).trading  # another process: an empty ledger
    again = second.market_buy("AAPL", 1_000, client_order_id="restart-1")
    assert again["existing"] is True and again["status"] == "Filled"
    assert again["filled_qty"] == placed["filled_qty"] and tsim.sim.order_count == 1


# -- bad input is refused before anything is sent -----------------------------------------------


class _Duck:
    def __init__(self, **fields):
        self.__dict__.update(fields)


@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.limit_buy("AAPL", 100, 1e-300),
        lambda t: t.market_buy("AAPL", 100, timeout=float("inf")),
        lambda t: t.get_position("AAPL", timeout=float("inf")),
        lambda t: t.place_order("AAPL", "BUY", 1e308),
        lambda t: t.place_order("AAPL", "BUY", 10**400),
        lambda t: t.limit_buy("AAPL", 1e7, 0.001),
        lambda t: t.market_buy("AAPL", 1e308),
        lambda t: t.market_buy(_Duck(symbol=7, secType="STK"), 100),
        lambda t: t.place_order(_Duck(symbol="AAPL", secType=""), "BUY", 1),
        lambda t: t.market_buy("ıbm", 100),
        lambda t: t.market_buy("ſpy", 100),
        lambda t: t.get_position("ﬁ"),
    ],
)
def test_bad_input_is_refused_before_any_request(trader, tsim, call):
    before = tsim.request_counts()
    with pytest.raises((ValueError, TypeError)):
        call(trader)
    assert tsim.request_counts() == before and tsim.sim.order_count == 0


def test_a_limit_below_the_tick_is_refused_before_the_order(trader, tsim):
    with pytest.raises(ValueError, match="minimum tick"):
        trader.limit_buy("AAPL", 100, 0.001)
    assert tsim.sim.order_count == 0


def test_module_level_look_alike_symbols_are_unknown_symbols(module_sim, caplog):
    caplog.set_level("WARNING", logger="ib_nice_funcs")
    for call, failed in [
        (lambda: n.market_buy("ıbm", 100), lambda r: r["success"] is False),
        (lambda: n.get_position("ſpy"), lambda r: r["known"] is False),
        (lambda: n.token_price("ﬁ"), lambda r: r is None),
    ]:
        caplog.clear()
        assert failed(call())
        got = warnings(caplog)
        assert len(got) == 1 and "ASCII" in got[0], got
    assert module_sim.sim.order_count == 0
    with pytest.raises(NonAsciiSymbolError):
        n.default_client().price("ıbm")
