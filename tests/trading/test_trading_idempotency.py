"""Client order ids: never a second order for an id already placed.

Covers the same session, two threads at once, a dropped connection and a
restarted agent (a new Client with the same client id).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ib_nice_funcs.errors import OrderRejectedError


def drop_and_wait(handle, client, timeout: float = 5.0) -> None:
    """Drop every connection at the simulator and wait until the client has noticed."""
    noticed = threading.Event()
    gateway = client.gateway

    async def arm() -> None:
        ib = await gateway.ib_async()
        ib.disconnectedEvent += noticed.set

    gateway.call(arm, timeout, "arm disconnect")
    handle.drop_connections()
    assert noticed.wait(timeout), "the client did not notice the dropped connection"


def resting_price(trader, symbol: str) -> float:
    return round(trader.client.price(symbol) * 0.5, 2)


def test_same_id_twice_returns_the_first_order(trader, tsim):
    price = resting_price(trader, "ETH-USD")
    first = trader.place_order("ETH-USD", "BUY", 0.1, "LMT", limit_price=price,
                               client_order_id="same-1")
    again = trader.place_order("ETH-USD", "BUY", 0.1, "LMT", limit_price=price,
                               client_order_id="same-1")
    assert again["order_id"] == first["order_id"] and again["existing"] is True
    assert tsim.sim.order_count == 1
    # The nice_funcs helpers take the id too.
    bought = trader.market_buy("BTC-USD", 300, client_order_id="buy-1")
    repeat = trader.market_buy("BTC-USD", 300, client_order_id="buy-1")
    assert repeat["order_id"] == bought["order_id"]
    assert tsim.sim.order_count == 2


def test_two_threads_with_one_id_send_one_order(trader, tsim):
    price = resting_price(trader, "BTC-USD")

    def place(_: int) -> dict:
        return trader.place_order("BTC-USD", "BUY", 0.01, "LMT", limit_price=price,
                                  client_order_id="race-1")

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(place, range(4)))
    assert len({r["order_id"] for r in results}) == 1
    assert tsim.sim.order_count == 1


def test_no_duplicate_across_a_dropped_connection(tsim, make_client):
    client = make_client(tsim)
    trader = client.trading
    price = resting_price(trader, "ETH-USD")
    resting = trader.place_order("ETH-USD", "BUY", 0.2, "LMT", limit_price=price,
                                 client_order_id="drop-lmt")
    filled = trader.market_buy("BTC-USD", 400, client_order_id="drop-mkt")
    assert tsim.sim.order_count == 2

    drop_and_wait(tsim, client)
    again = trader.place_order("ETH-USD", "BUY", 0.2, "LMT", limit_price=price,
                               client_order_id="drop-lmt")
    assert again["existing"] is True and again["order_id"] == resting["order_id"]
    assert again["status"] in ("Submitted", "PreSubmitted")
    again_mkt = trader.market_buy("BTC-USD", 400, client_order_id="drop-mkt")
    assert again_mkt["existing"] is True and again_mkt["status"] == "Filled"
    assert again_mkt["filled_qty"] == pytest.approx(filled["filled_qty"])
    assert tsim.sim.order_count == 2
    assert tsim.sim.connections == 2  # it really reconnected


def test_no_duplicate_after_a_restart_with_the_same_client_id(tsim, make_client, new_client_id):
    agent_id = new_client_id()
    first = make_client(tsim, client_id=agent_id)
    price = resting_price(first.trading, "LTC-USD")
    resting = first.trading.place_order("LTC-USD", "BUY", 1, "LMT", limit_price=price,
                                        client_order_id="restart-lmt")
    filled = first.trading.market_buy("ETH-USD", 500, client_order_id="restart-mkt")
    first.close()  # the agent process ends

    restarted = make_client(tsim, client_id=agent_id).trading
    again = restarted.place_order("LTC-USD", "BUY", 1, "LMT", limit_price=price,
                                  client_order_id="restart-lmt")
    assert again["existing"] is True and again["order_id"] == resting["order_id"]
    again_mkt = restarted.market_buy("ETH-USD", 500, client_order_id="restart-mkt")
    assert again_mkt["existing"] is True
    assert again_mkt["filled_qty"] == pytest.approx(filled["filled_qty"])
    assert tsim.sim.order_count == 2
    # The restarted agent can still cancel the order it placed before.
    assert restarted.cancel_order(resting["order_id"])["success"] is True


def test_another_client_sees_the_open_order_by_id(tsim, make_client):
    trader = make_client(tsim).trading
    price = resting_price(trader, "BCH-USD")
    placed = trader.place_order("BCH-USD", "BUY", 1, "LMT", limit_price=price,
                                client_order_id="shared-1")
    other = make_client(tsim).trading
    seen = other.place_order("BCH-USD", "BUY", 1, "LMT", limit_price=price,
                             client_order_id="shared-1")
    assert seen["existing"] is True and seen["perm_id"] == placed["perm_id"]
    assert tsim.sim.order_count == 1


def test_a_rejected_id_stays_rejected(tsim, make_client):
    trader = make_client(tsim, max_position_usd=1e9, max_exposure_usd=1e9).trading
    for _ in range(2):
        with pytest.raises(OrderRejectedError) as err:
            trader.place_order("BTC-USD", "SELL", 1, client_order_id="rej-1")
        assert err.value.code == 201
    assert tsim.sim.order_count == 1


def test_drop_while_waiting_fails_promptly_then_resend_is_safe(tsim, make_client, warnings_log):
    client = make_client(tsim, timeout=8)
    trader = client.trading
    low = resting_price(trader, "BTC-USD")
    trader.place_order("BTC-USD", "BUY", 0.01, "LMT", limit_price=low)  # warms the contract rules
    sent = threading.Event()

    async def arm() -> None:
        ib = await client.gateway.ib_async()
        ib.newOrderEvent += lambda trade: sent.set()

    client.gateway.call(arm, 5, "arm")
    tsim.set_blackhole(True)  # the simulator now reads requests and never answers
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(trader.place_order, "BTC-USD", "BUY", 0.02, "LMT", limit_price=low)
        assert sent.wait(5)
        tsim.set_blackhole(False)
        drop_and_wait(tsim, client)
        with pytest.raises(ConnectionError) as err:
            pending.result(timeout=3)  # well before the 8 s timeout
    result = err.value.result
    coid = result["client_order_id"]
    assert result["success"] is None and result["status"] == "Unknown"  # not "failed"
    assert f"client_order_id={coid!r}" in result["error"]
    assert tsim.sim.order_count == 1  # the blackholed order never arrived
    again = trader.place_order("BTC-USD", "BUY", 0.02, "LMT", limit_price=low, client_order_id=coid)
    assert again["status"] in ("Submitted", "PreSubmitted") and "existing" not in again
    assert tsim.sim.order_count == 2
    assert any("never arrived" in r.getMessage() for r in warnings_log.records)
    # ... and a third call with that id is the same order, not another one.
    third = trader.place_order("BTC-USD", "BUY", 0.02, "LMT", limit_price=low, client_order_id=coid)
    assert third["order_id"] == again["order_id"] and tsim.sim.order_count == 2
