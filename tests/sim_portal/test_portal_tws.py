"""One account behind two APIs: the portal shares the TWS simulator's engine and market."""

from __future__ import annotations

import asyncio

import pytest
from ib_async import IB, ExecutionFilter, LimitOrder, MarketOrder, Stock

from ib_nice_funcs.sim import run_simulator

from .conftest import AAPL, Api, run

STOCK = Stock("AAPL", "SMART", "USD")


@pytest.fixture
def both(market):
    with run_simulator(market=market, tick_interval=0.05, portal=True,
                       portal_kwargs={"enforce_rate_limits": False}) as handle:
        yield handle


async def _connect(port: int, client_id: int) -> IB:
    ib = IB()
    await ib.connectAsync("127.0.0.1", port, clientId=client_id, timeout=5)
    return ib


def _limit(market, pct=0.01) -> float:
    return round(market.quote("AAPL").bid * (1 - pct), 2)


def test_handle_exposes_the_portal(both):
    assert both.portal is not None and both.portal.market is both.market
    assert both.portal.sim.engine is both.sim.engine
    assert both.portal.account == both.sim.account
    assert both.portal.url.startswith("https://") and both.portal.ca_path


def test_rest_orders_are_visible_over_tws(both, market):
    api = Api(both.portal)
    api.preflight()
    px = _limit(market)
    rest = api.order(conid=AAPL, side="BUY", quantity=5, orderType="LMT", price=px, tif="GTC",
                     cOID="rest-lmt").json()
    body, _ = api.confirm_all(api.order(conid=AAPL, side="BUY", quantity=7, orderType="MKT",
                                        tif="DAY", cOID="rest-mkt"))

    async def go():
        ib = await _connect(both.port, 31)
        try:
            trades = await ib.reqAllOpenOrdersAsync()
            [t] = [t for t in trades if t.order.orderRef == "rest-lmt"]
            assert t.order.permId == int(rest[0]["order_id"])
            assert t.order.lmtPrice == px and t.order.totalQuantity == 5
            fills = await ib.reqExecutionsAsync(ExecutionFilter())
            [f] = [f for f in fills if f.execution.orderRef == "rest-mkt"]
            assert f.execution.shares == 7 and f.execution.permId == int(body[0]["order_id"])
            positions = await ib.reqPositionsAsync()
            assert [(p.contract.conId, p.position) for p in positions] == [(AAPL, 7.0)]
        finally:
            ib.disconnect()

    run(go())
    api.close()


def test_tws_orders_are_visible_over_rest_and_block_the_coid(both, market):
    px = _limit(market)

    async def place():
        ib = await _connect(both.port, 32)
        try:
            trade = ib.placeOrder(STOCK, LimitOrder("BUY", 3, px, orderRef="tws-lmt",
                                                    tif="GTC"))
            fill = ib.placeOrder(STOCK, MarketOrder("BUY", 2, orderRef="tws-mkt"))
            for _ in range(250):
                if trade.orderStatus.status == "Submitted" and fill.isDone():
                    break
                await asyncio.sleep(0.02)
            assert trade.orderStatus.status == "Submitted" and fill.isDone()
            return trade.order.permId, ib
        except BaseException:
            ib.disconnect()
            raise

    async def go():
        perm, ib = await place()
        try:
            api = Api(both.portal)
            api.preflight()
            rows = (await asyncio.to_thread(api.get, "/iserver/account/orders")).json()["orders"]
            by_ref = {r.get("order_ref"): r for r in rows}
            assert by_ref["tws-lmt"]["orderId"] == perm and by_ref["tws-lmt"]["status"] == \
                "Submitted"
            assert by_ref["tws-mkt"]["status"] == "Filled"
            # the same client order id cannot be placed again over REST
            dup = await asyncio.to_thread(api.order, conid=AAPL, side="BUY", quantity=3,
                                          orderType="LMT", price=px, tif="GTC",
                                          cOID="tws-lmt")
            assert "already" in dup.json()["error"]
            pos = (await asyncio.to_thread(api.get, f"/portfolio/{api.acct}/positions/0")).json()
            assert pos[0]["conid"] == AAPL and pos[0]["position"] == 2.0
            # a cancel over REST reaches the TWS client that placed the order
            r = await asyncio.to_thread(api.delete, f"/iserver/account/{api.acct}/order/{perm}")
            assert r.json()["msg"] == "Request was submitted"
            [trade] = [t for t in ib.trades() if t.order.orderRef == "tws-lmt"]
            for _ in range(250):
                if trade.orderStatus.status == "Cancelled":
                    break
                await asyncio.sleep(0.02)
            assert trade.orderStatus.status == "Cancelled"
            api.close()
        finally:
            ib.disconnect()

    run(go())
    assert both.portal.order_count == 0


def test_portal_keeps_working_when_tws_drops(both, market):
    api = Api(both.portal)
    api.preflight()
    both.set_refuse_new(True)
    both.drop_connections()
    rows = api.snapshot([AAPL], "31")
    assert float(rows[0]["31"]) == market.quote("AAPL").last
    body, _ = api.confirm_all(api.order(conid=AAPL, side="BUY", quantity=1, orderType="MKT",
                                        tif="DAY", cOID="after-drop"))
    assert body[0]["order_status"] == "Filled"
    both.set_refuse_new(False)
    assert [o.order_ref for o in both.sim.engine.orders.values()] == ["after-drop"]
    api.close()
