"""The simulator driven by IB's official client (ibapi), at several server versions."""

from __future__ import annotations

import queue
import threading

import pytest
from ibapi.client import EClient
from ibapi.contract import Contract
from ibapi.order import Order
from ibapi.wrapper import EWrapper

from ib_nice_funcs.sim import run_simulator


class App(EWrapper, EClient):
    """Collects every callback into one queue as (name, args)."""

    def __init__(self) -> None:
        EClient.__init__(self, self)
        self.events: queue.Queue = queue.Queue()
        self.bars: dict[int, list] = {}

    def _put(self, name, *args):
        self.events.put((name, args))

    def nextValidId(self, orderId):
        self._put("nextValidId", orderId)

    def managedAccounts(self, accountsList):
        self._put("managedAccounts", accountsList)

    def error(self, reqId, errorCode, errorString, *rest):
        self._put("error", reqId, errorCode, errorString)

    def contractDetails(self, reqId, contractDetails):
        self._put("contractDetails", reqId, contractDetails)

    def contractDetailsEnd(self, reqId):
        self._put("contractDetailsEnd", reqId)

    def historicalData(self, reqId, bar):
        self.bars.setdefault(reqId, []).append(bar)

    def historicalDataEnd(self, reqId, start, end):
        self._put("historicalDataEnd", reqId, start, end)

    def tickPrice(self, reqId, tickType, price, attrib):
        self._put("tickPrice", reqId, tickType, price)

    def tickSnapshotEnd(self, reqId):
        self._put("tickSnapshotEnd", reqId)

    def openOrder(self, orderId, contract, order, orderState):
        self._put("openOrder", orderId, order.orderRef, orderState.status)

    def orderStatus(self, orderId, status, filled, *rest):
        self._put("orderStatus", orderId, status, filled)

    def execDetails(self, reqId, contract, execution):
        self._put("execDetails", reqId, execution.orderRef, execution.shares, execution.price)

    def commissionReport(self, commissionReport):
        self._put("commissionReport", commissionReport.commission)

    def position(self, account, contract, position, avgCost):
        self._put("position", contract.symbol, float(position), avgCost)

    def positionEnd(self):
        self._put("positionEnd")

    def wait_for(self, name, pred=lambda args: True, timeout=5.0):
        """Next event called ``name`` whose args satisfy ``pred`` (others are kept in order)."""
        seen = []
        try:
            while True:
                ev = self.events.get(timeout=timeout)
                if ev[0] == name and pred(ev[1]):
                    return ev[1]
                seen.append(ev)
        except queue.Empty:
            raise AssertionError(f"no {name} within {timeout} s; saw {seen}") from None
        finally:
            for ev in seen:
                self.events.put(ev)


@pytest.fixture(params=[157, 150, 136, 124, 110])
def app(request, market):
    with run_simulator(market=market, max_server_version=request.param) as handle:
        client = App()
        client.connect("127.0.0.1", handle.port, 11)
        thread = threading.Thread(target=client.run, daemon=True)
        thread.start()
        try:
            client.wait_for("nextValidId")
            assert client.serverVersion() == request.param
            yield client
        finally:
            client.disconnect()
            thread.join(5)


def _stock(symbol="AAPL"):
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = symbol, "STK", "SMART", "USD"
    return c


def test_connect_and_farm_messages(app):
    assert app.wait_for("managedAccounts") == ("DU1234567",)
    codes = {app.wait_for("error", lambda a, code=code: a[1] == code)[1]
             for code in (2104, 2106, 2158)}
    assert codes == {2104, 2106, 2158}


def test_contract_details_and_error_200(app):
    app.reqContractDetails(1, _stock("MSFT"))
    _, details = app.wait_for("contractDetails", lambda a: a[0] == 1)
    assert details.contract.conId == 272093 and details.minTick == 0.01
    assert details.longName == "MICROSOFT CORP" and details.timeZoneId == "US/Eastern"
    app.wait_for("contractDetailsEnd", lambda a: a[0] == 1)
    app.reqContractDetails(2, _stock("NOSUCH"))
    _, code, text = app.wait_for("error", lambda a: a[0] == 2)
    assert code == 200 and "No security definition" in text


def test_historical_data(app):
    app.reqHistoricalData(3, _stock(), "", "2 D", "15 mins", "TRADES", 1, 1, False, [])
    _, start, end = app.wait_for("historicalDataEnd", lambda a: a[0] == 3)
    bars = app.bars[3]
    assert len(bars) == 26 + 3  # yesterday's session and today 09:30, 09:45, 10:00
    assert start.endswith("US/Eastern") and end.endswith("US/Eastern")
    for b in bars:
        assert b.low <= min(b.open, b.close) and max(b.open, b.close) <= b.high
        assert b.volume > 0
    fx = Contract()
    fx.symbol, fx.secType, fx.exchange, fx.currency = "EUR", "CASH", "IDEALPRO", "USD"
    app.reqHistoricalData(4, fx, "20240305-18:00:00", "3600 S", "1 min", "MIDPOINT", 0, 2,
                          False, [])
    app.wait_for("historicalDataEnd", lambda a: a[0] == 4)
    assert len(app.bars[4]) == 60 and app.bars[4][0].date.isdigit()
    app.reqHistoricalData(5, fx, "", "1 D", "1 min", "TRADES", 0, 1, False, [])
    assert app.wait_for("error", lambda a: a[0] == 5)[1] == 162


def test_snapshot_and_market_order(app):
    app.reqMktData(6, _stock(), "", True, False, [])
    app.wait_for("tickSnapshotEnd", lambda a: a[0] == 6)
    bid = app.wait_for("tickPrice", lambda a: a[0] == 6 and a[1] == 1)[2]
    ask = app.wait_for("tickPrice", lambda a: a[0] == 6 and a[1] == 2)[2]
    assert 0 < bid < ask
    if app.serverVersion() < 111:
        return  # ibapi itself refuses orders below 111 (it always sends cashQty)
    order = Order()
    order.action, order.totalQuantity, order.orderType = "BUY", 10, "MKT"
    order.orderRef = "ref-ibapi"
    app.placeOrder(100, _stock(), order)
    assert app.wait_for("execDetails")[1:] == ("ref-ibapi", 10, ask)
    app.wait_for("orderStatus", lambda a: a[1] == "Filled")
    assert app.wait_for("commissionReport")[0] == 1.0
    app.reqPositions()
    symbol, qty, avg_cost = app.wait_for("position")
    assert (symbol, qty) == ("AAPL", 10.0) and avg_cost == pytest.approx(ask + 0.1)
    app.wait_for("positionEnd")
