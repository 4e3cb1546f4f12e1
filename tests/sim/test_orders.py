"""Orders: the matching engine alone, then each order type's life cycle through ib_async."""

from __future__ import annotations

import asyncio

import pytest
from ib_async import (
    Crypto,
    ExecutionFilter,
    Forex,
    LimitOrder,
    MarketOrder,
    Order,
    Stock,
    StopOrder,
)

from ib_nice_funcs.sim import PaperMarket, run_simulator
from ib_nice_funcs.sim.matching import MatchingEngine, SimOrder, commission_for

from .conftest import OPEN_T, WEEKEND_T, StepClock, connect, run

AAPL = Stock("AAPL", "SMART", "USD")


# ------------------------------------------------------------------ engine only
def _order(engine, oid, action, qty, kind, symbol="AAPL", **kw):
    return SimOrder(order_id=oid, client_id=1, perm_id=0, account="",
                    inst=engine.market.get(symbol), action=action, quantity=qty, order_type=kind,
                    **kw)


@pytest.fixture
def engine(market):
    return MatchingEngine(market, "DU1234567", 100_000.0)


def test_commissions():
    m = PaperMarket()
    aapl, eur, btc = m.get("AAPL"), m.get("EUR.USD"), m.get("BTC")
    assert commission_for(aapl, 100, 190.0) == 1.0            # minimum
    assert commission_for(aapl, 1000, 190.0) == 5.0           # per share
    # 1% cap
    assert commission_for(aapl, 1000, 0.5) == 5.0 and commission_for(aapl, 100, 0.5) == 0.5
    assert commission_for(eur, 20_000, 1.09) == 2.0
    assert commission_for(eur, 1_000_000, 1.09) == pytest.approx(21.8)
    assert commission_for(btc, 0.1, 60_000) == pytest.approx(10.8)


def test_market_order_fills_at_the_quote_and_books_cash(engine, market):
    q = market.quote("AAPL")
    events = engine.submit(_order(engine, 1, "BUY", 100, "MKT"), OPEN_T)
    fills = [e.fill for e in events if e.kind == "fill"]
    assert len(fills) == 1 and fills[0].price == q.ask
    assert engine.positions[265598].quantity == 100
    assert engine.cash == pytest.approx(100_000 - 100 * q.ask - 1.0)
    events = engine.submit(_order(engine, 2, "SELL", 100, "MKT"), OPEN_T)
    fill = [e.fill for e in events if e.kind == "fill"][0]
    assert fill.price == q.bid
    assert fill.realized_pnl == pytest.approx((q.bid - q.ask) * 100 - 2.0)
    assert engine.values(OPEN_T)["RealizedPnL"] == pytest.approx(fill.realized_pnl)


def test_rejections(engine):
    events = engine.submit(_order(engine, 1, "BUY", 0.5, "MKT"), OPEN_T)
    assert [(e.kind, e.code) for e in events] == [("error", 201)]
    events = engine.submit(_order(engine, 2, "BUY", 10_000, "MKT"), OPEN_T)  # ~1.9M > 400k BP
    assert events[0].code == 201 and "BUYING POWER" in events[0].message
    events = engine.submit(_order(engine, 3, "SELL", 1, "MKT", symbol="BTC"), OPEN_T)
    assert events[0].code == 201 and "Short" in events[0].message
    events = engine.submit(_order(engine, 4, "BUY", 1, "LMT", lmt_price=100.001), OPEN_T)
    assert events[0].code == 201 and "minimum price variation" in events[0].message
    events = engine.submit(_order(engine, 5, "BUY", 1, "MOC", symbol="BTC"), OPEN_T)
    assert events[0].code == 201
    assert engine.submit(_order(engine, 1, "BUY", 1, "MKT"), OPEN_T)[0].code == 103
    assert engine.cancel(1, 99, OPEN_T)[0].code == 10147


def test_crypto_fractional_and_partial_fills(market):
    engine = MatchingEngine(market, "DU1", 1_000_000.0, partial_fills=True)
    events = engine.submit(_order(engine, 1, "BUY", 0.0123, "MKT", symbol="BTC"), OPEN_T)
    fills = [e.fill for e in events if e.kind == "fill"]
    assert fills[0].shares == pytest.approx(0.0061)
    events = engine.on_time(OPEN_T + 1)
    fills += [e.fill for e in events if e.kind == "fill"]
    assert sum(f.shares for f in fills) == pytest.approx(0.0123)
    assert engine.positions[479624278].quantity == pytest.approx(0.0123)


def test_orders_wait_for_the_market(market):
    clock = StepClock(WEEKEND_T)
    m = PaperMarket(seed=1, clock=clock)
    engine = MatchingEngine(m, "DU1", 1_000_000.0)
    events = engine.submit(_order(engine, 1, "BUY", 1, "MKT"), WEEKEND_T)
    assert events[0].order.status == "PreSubmitted" and not any(e.kind == "fill" for e in events)
    assert any(e.kind == "fill" for e in engine.submit(_order(engine, 2, "BUY", 0.01, "MKT",
                                                              symbol="ETH"), WEEKEND_T))
    monday = WEEKEND_T + 2 * 86400 + 3 * 3600  # Monday 10:00 ET
    events = engine.on_time(monday)
    assert any(e.kind == "fill" for e in events)


# --------------------------------------------------------------- through the wire
def _trade_done(trade):
    return trade.isDone()


async def _wait(pred, timeout=5.0):
    for _ in range(int(timeout / 0.02)):
        if pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_market_order_life_cycle_and_order_ref(sim):
    async def go():
        ib = await connect(sim.port)
        try:
            [c] = await ib.qualifyContractsAsync(AAPL)
            [t] = await ib.reqTickersAsync(c)
            order = MarketOrder("BUY", 10, orderRef="cid-123")
            trade = ib.placeOrder(c, order)
            await _wait(lambda: trade.isDone() and trade.fills
                        and trade.fills[0].commissionReport.commission)
            assert trade.orderStatus.status == "Filled" and trade.orderStatus.filled == 10
            fill = trade.fills[0]
            assert fill.execution.orderRef == "cid-123" and fill.execution.price == t.ask
            assert fill.commissionReport.commission == 1.0
            await _wait(lambda: any(p.contract.conId == c.conId for p in ib.positions()))
            [pos] = ib.positions()
            assert pos.position == 10 and pos.avgCost == pytest.approx(t.ask + 0.1)
            await _wait(lambda: ib.portfolio())
            assert ib.portfolio()[0].position == 10
            fills = await ib.reqExecutionsAsync(ExecutionFilter(symbol="AAPL"))
            assert [f.execution.orderRef for f in fills] == ["cid-123"]
            done = await ib.reqCompletedOrdersAsync(False)
            assert [d.order.orderRef for d in done] == ["cid-123"]
            assert done[0].orderStatus.status == "Filled"
        finally:
            ib.disconnect()

    run(go())
    assert sim.sim.order_count == 1


def test_limit_order_rests_then_fills_and_cancel(sim):
    async def go():
        ib = await connect(sim.port)
        try:
            [c] = await ib.qualifyContractsAsync(AAPL)
            [t] = await ib.reqTickersAsync(c)
            below = round(t.bid - 1.0, 2)
            trade = ib.placeOrder(c, LimitOrder("BUY", 5, below, orderRef="lmt-1"))
            await _wait(lambda: trade.orderStatus.status == "Submitted")
            opened = await ib.reqOpenOrdersAsync()
            assert [o.order.orderRef for o in opened] == ["lmt-1"]
            await asyncio.get_running_loop().run_in_executor(None, sim.set_price, "AAPL",
                                                             below - 0.5)
            await _wait(trade.isDone)
            assert trade.orderStatus.status == "Filled"
            assert trade.fills[0].execution.price <= below
            other = ib.placeOrder(c, LimitOrder("SELL", 5, 999.0))
            await _wait(lambda: other.orderStatus.status == "Submitted")
            ib.cancelOrder(other.order)
            await _wait(other.isDone)
            assert other.orderStatus.status == "Cancelled"
        finally:
            ib.disconnect()

    run(go())


def test_stop_trail_and_midprice(sim):
    async def go():
        ib = await connect(sim.port)
        try:
            [c] = await ib.qualifyContractsAsync(AAPL)
            px = (await ib.reqTickersAsync(c))[0].last
            buy = ib.placeOrder(c, MarketOrder("BUY", 20))
            await _wait(buy.isDone)
            stop = ib.placeOrder(c, StopOrder("SELL", 5, round(px - 2, 2)))
            trail = ib.placeOrder(c, Order(action="SELL", totalQuantity=5, orderType="TRAIL",
                                           trailingPercent=1.0))
            await _wait(lambda: stop.orderStatus.status == "Submitted"
                        and trail.orderStatus.status == "Submitted")
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, sim.set_price, "AAPL", round(px + 5, 2))
            await asyncio.sleep(0.3)  # the trail follows the rise
            assert not trail.isDone()
            await loop.run_in_executor(None, sim.set_price, "AAPL", round(px + 3, 2))
            await _wait(trail.isDone)
            assert trail.fills[0].execution.price < px + 3 and not stop.isDone()
            await loop.run_in_executor(None, sim.set_price, "AAPL", round(px - 3, 2))
            await _wait(stop.isDone)
            assert stop.orderStatus.status == "Filled"
            mid = ib.placeOrder(c, Order(action="SELL", totalQuantity=5, orderType="MIDPRICE"))
            await _wait(mid.isDone)
            assert mid.fills[0].execution.price == pytest.approx(round(px - 3, 2))
        finally:
            ib.disconnect()

    run(go())


def test_moc_loc_fill_at_the_close(sim):
    async def go():
        ib = await connect(sim.port)
        try:
            [c] = await ib.qualifyContractsAsync(AAPL)
            px = (await ib.reqTickersAsync(c))[0].last
            moc = ib.placeOrder(c, Order(action="BUY", totalQuantity=3, orderType="MOC"))
            loc = ib.placeOrder(c, Order(action="BUY", totalQuantity=3, orderType="LOC",
                                         lmtPrice=round(px - 50, 2)))
            await _wait(lambda: moc.orderStatus.status == "Submitted"
                        and loc.orderStatus.status == "Submitted")
            await asyncio.get_running_loop().run_in_executor(None, sim.run_close)
            await _wait(lambda: moc.isDone() and loc.isDone())
            assert moc.orderStatus.status == "Filled" and moc.fills[0].execution.price == px
            assert loc.orderStatus.status == "Cancelled"
        finally:
            ib.disconnect()

    run(go())


def test_rejects_global_cancel_and_account_values(sim):
    errors = []

    async def go():
        ib = await connect(sim.port)
        ib.errorEvent += lambda req_id, code, msg, contract: errors.append(code)
        try:
            [btc, fx] = await ib.qualifyContractsAsync(Crypto("BTC", "PAXOS", "USD"),
                                                       Forex("EURUSD"))
            bad = ib.placeOrder(btc, MarketOrder("BUY", 0.00001))
            await _wait(bad.isDone)
            assert bad.orderStatus.status == "Cancelled"
            good = ib.placeOrder(btc, MarketOrder("BUY", 0.5))
            await _wait(good.isDone)
            assert good.orderStatus.status == "Filled" and good.orderStatus.filled == 0.5
            fxt = ib.placeOrder(fx, MarketOrder("BUY", 20_000))
            await _wait(fxt.isDone)
            a = ib.placeOrder(fx, LimitOrder("BUY", 20_000, 0.5))
            b = ib.placeOrder(fx, LimitOrder("SELL", 20_000, 5.0))
            await _wait(lambda: a.orderStatus.status == b.orderStatus.status == "Submitted")
            ib.reqGlobalCancel()
            await _wait(lambda: a.isDone() and b.isDone())
            await _wait(lambda: {"NetLiquidation", "UnrealizedPnL"} <= {
                v.tag for v in ib.accountValues()})
            await asyncio.sleep(0.2)
            values = {v.tag: float(v.value) for v in ib.accountValues()
                      if v.currency == "USD" and v.tag not in ("Currency", "RealCurrency")}
            assert values["NetLiquidation"] < 1_000_000  # spread and commissions paid
            assert values["GrossPositionValue"] > 0
            what_if = await ib.whatIfOrderAsync(fx, MarketOrder("BUY", 25_000))
            assert float(what_if.commission) == 2.0
        finally:
            ib.disconnect()

    run(go())
    assert 201 in errors and 202 in errors
    assert sim.sim.order_count >= 5


def test_live_account_id(market):
    with run_simulator(market=market, account="U7654321") as h:
        async def go():
            ib = await connect(h.port)
            try:
                assert ib.managedAccounts() == ["U7654321"]
            finally:
                ib.disconnect()

        run(go())


@pytest.mark.parametrize("version", [157, 163, 166, 170, 176, 177])
def test_ib_async_at_older_server_versions(market, version):
    with run_simulator(market=market, max_server_version=version) as h:
        async def go():
            ib = await connect(h.port)
            try:
                assert ib.client.serverVersion() == version
                [c, btc] = await ib.qualifyContractsAsync(AAPL, Crypto("BTC", "PAXOS", "USD"))
                [d] = await ib.reqContractDetailsAsync(btc)
                assert d.minTick == 0.25
                bars = await ib.reqHistoricalDataAsync(c, "", "1 D", "5 mins", "TRADES", True, 1,
                                                       timeout=5)
                assert len(bars) == 7
                trade = ib.placeOrder(c, LimitOrder("BUY", 1, 500.0, orderRef="v"))
                await _wait(trade.isDone)
                assert trade.fills[0].execution.orderRef == "v"
                done = await ib.reqCompletedOrdersAsync(False)
                assert done[0].order.orderRef == "v"
            finally:
                ib.disconnect()

        run(go())


def test_drop_acks_executes_orders_but_swallows_their_acknowledgements(sim):
    """The drop_acks knob: orders fill, but no openOrder/orderStatus reaches the client."""
    async def go():
        ib = await connect(sim.port)
        try:
            [c] = await ib.qualifyContractsAsync(AAPL)
            statuses: list[str] = []
            ib.orderStatusEvent += lambda trade: statuses.append(trade.orderStatus.status)
            filled = asyncio.Event()
            ib.execDetailsEvent += lambda trade, fill: filled.set()
            await asyncio.get_running_loop().run_in_executor(None, sim.drop_acks, True)
            trade = ib.placeOrder(c, MarketOrder("BUY", 7, orderRef="no-ack"))
            resting = ib.placeOrder(c, LimitOrder("BUY", 1, 1.0, orderRef="no-ack-lmt"))
            await asyncio.wait_for(filled.wait(), 10)
            assert trade.orderStatus.status == "PendingSubmit" and statuses == []
            # the queries still tell the truth: the limit order rests, the market order filled
            open_refs = [t.order.orderRef for t in await ib.reqAllOpenOrdersAsync()]
            assert open_refs == ["no-ack-lmt"]
            done = await ib.reqCompletedOrdersAsync(False)
            assert ([(d.order.orderRef, d.orderStatus.status) for d in done]
                    == [("no-ack", "Filled")])
            ib.cancelOrder(resting.order)
            assert await ib.reqAllOpenOrdersAsync() == []  # cancelled, unannounced
            assert resting.orderStatus.status == "PendingCancel"  # never confirmed
            await asyncio.get_running_loop().run_in_executor(None, sim.drop_acks, False)
            again = ib.placeOrder(c, LimitOrder("BUY", 1, 1.0, orderRef="acked"))
            submitted = asyncio.Event()
            again.statusEvent += lambda t: t.orderStatus.status == "Submitted" and submitted.set()
            await asyncio.wait_for(submitted.wait(), 10)
            ib.cancelOrder(again.order)
        finally:
            ib.disconnect()

    run(go())
    assert sim.sim.order_count == 3


def test_gtd_order_expires_at_its_time(sim, clock):
    """A GTD limit rests until goodTillDate passes on the market clock; none given: 201."""
    async def go():
        ib = await connect(sim.port)
        try:
            [aapl] = await ib.qualifyContractsAsync(AAPL)
            [t] = await ib.reqTickersAsync(aapl)
            gtd = LimitOrder("BUY", 1, round(t.bid * 0.9, 2), tif="GTD",
                             goodTillDate="20240306 10:05:00 US/Eastern")
            trade = ib.placeOrder(aapl, gtd)
            bad = ib.placeOrder(aapl, LimitOrder("BUY", 1, round(t.bid * 0.9, 2), tif="GTD"))
            for _ in range(250):
                if trade.orderStatus.status == "Submitted" and bad.orderStatus.status:
                    break
                await asyncio.sleep(0.02)
            assert trade.orderStatus.status == "Submitted"
            clock.t += 300  # 10:05:30
            for _ in range(250):
                if trade.orderStatus.status == "Cancelled":
                    break
                await asyncio.sleep(0.02)
            return trade.orderStatus.status, bad
        finally:
            ib.disconnect()

    status, bad = run(go())
    assert status == "Cancelled"
    assert any(e.errorCode == 201 for e in bad.log)
