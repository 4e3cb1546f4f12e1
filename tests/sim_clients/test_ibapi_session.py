"""IB's own client (ibapi) runs the scripted agent session against the TWS simulator."""

from __future__ import annotations

import queue
import threading
import time

import pytest
from ibapi.client import EClient
from ibapi.contract import Contract
from ibapi.order import Order
from ibapi.wrapper import EWrapper

_RECORDED = ("nextValidId", "error", "tickPrice", "historicalDataEnd", "orderStatus", "pnl",
             "pnlSingle", "realtimeBar", "scannerParameters", "newsProviders", "marketRule",
             "accountSummaryEnd", "position", "positionEnd", "softDollarTiers", "familyCodes",
             "mktDepthExchanges", "securityDefinitionOptionParameterEnd", "historicalNewsEnd",
             "smartComponents", "currentTime")


class Recorder(EWrapper, EClient):
    """Every callback named in ``_RECORDED`` lands in one queue as (name, args)."""

    def __init__(self) -> None:
        EClient.__init__(self, self)
        self.events: queue.Queue = queue.Queue()
        self.seen: list[tuple[str, tuple]] = []

    def next_event(self, name: str, pred=lambda args: True, timeout: float = 15.0) -> tuple:
        """The first event ``name`` (seen before or arriving within ``timeout``)
        matching ``pred``."""
        deadline = time.monotonic() + timeout
        while True:
            for i, (n, args) in enumerate(self.seen):
                if n == name and pred(args):
                    del self.seen[i]
                    return args
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {name} within {timeout} s; saw {self.seen[-20:]}")
            try:
                self.seen.append(self.events.get(timeout=left))
            except queue.Empty:
                pass


for _name in _RECORDED:
    setattr(Recorder, _name, lambda self, *args, _n=_name: self.events.put((_n, args)))


def _stock() -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = "AAPL", "STK", "SMART", "USD"
    return c


def _order(action, qty, kind, *, lmt=None, aux=None, parent=0, transmit=True, oca=""):
    o = Order()
    o.action, o.totalQuantity, o.orderType = action, qty, kind
    if lmt is not None:
        o.lmtPrice = lmt
    if aux is not None:
        o.auxPrice = aux
    o.parentId, o.transmit, o.ocaGroup = parent, transmit, oca
    o.ocaType = 1 if oca else 0
    o.eTradeOnly = o.firmQuoteOnly = False  # old ibapi defaults TWS 10 refuses
    o.tif = "GTC"
    return o


@pytest.fixture
def app(sims):
    client = Recorder()
    client.connect("127.0.0.1", sims.port, 21)
    thread = threading.Thread(target=client.run, daemon=True)
    thread.start()
    try:
        client.next_event("nextValidId")
        yield client
    finally:
        client.disconnect()
        thread.join(5)


def test_ibapi_scripted_session(app):
    aapl = _stock()
    app.reqMktData(1, aapl, "", True, False, [])
    last = app.next_event("tickPrice", lambda a: a[0] == 1 and a[1] == 4)[2]
    for req_id, (bar, dur, what) in enumerate((("1 min", "1 D", "TRADES"),
                                                ("1 hour", "5 D", "TRADES"),
                                                ("1 day", "1 M", "ADJUSTED_LAST"),
                                                ("5 mins", "1 D", "BID_ASK")), start=10):
        app.reqHistoricalData(req_id, aapl, "", dur, bar, what, 1, 1, False, [])
        app.next_event("historicalDataEnd", lambda a, r=req_id: a[0] == r)
    app.reqRealTimeBars(20, aapl, 5, "TRADES", False, [])
    app.next_event("realtimeBar", lambda a: a[0] == 20)
    app.cancelRealTimeBars(20)
    # Bracket: the parent fills, the children wait for a trigger.
    app.placeOrder(100, aapl, _order("BUY", 10, "LMT", lmt=round(last + 1, 2), transmit=False))
    app.placeOrder(101, aapl, _order("SELL", 10, "LMT", lmt=round(last + 10, 2), parent=100,
                                     transmit=False))
    app.placeOrder(102, aapl, _order("SELL", 10, "STP", aux=round(last - 10, 2), parent=100))
    app.next_event("orderStatus", lambda a: a[0] == 100 and a[1] == "Filled")
    app.next_event("orderStatus", lambda a: a[0] == 101 and a[1] == "Submitted")
    # OCA pair, a modify, then cancel everything.
    app.placeOrder(110, aapl, _order("BUY", 1, "LMT", lmt=round(last * 0.9, 2), oca="g"))
    app.placeOrder(111, aapl, _order("BUY", 1, "LMT", lmt=round(last * 0.8, 2), oca="g"))
    app.placeOrder(110, aapl, _order("BUY", 2, "LMT", lmt=round(last * 0.85, 2), oca="g"))
    app.next_event("orderStatus", lambda a: a[0] == 111 and a[1] == "Submitted")
    app.reqGlobalCancel()
    for oid in (101, 102, 110, 111):
        app.next_event("orderStatus", lambda a, o=oid: a[0] == o and a[1] == "Cancelled")
    # P&L, account, positions.
    app.reqPnL(30, "DU1234567", "")
    assert len(app.next_event("pnl", lambda a: a[0] == 30)) == 4
    app.reqPnLSingle(31, "DU1234567", "", 265598)
    assert app.next_event("pnlSingle", lambda a: a[0] == 31)[1] == 10
    app.cancelPnL(30)
    app.cancelPnLSingle(31)
    app.reqAccountSummary(40, "All", "NetLiquidation,AvailableFunds")
    app.next_event("accountSummaryEnd", lambda a: a[0] == 40)
    app.reqPositions()
    app.next_event("positionEnd")
    # One-off lookups answer (with their own id where they have one); none says 321.
    app.reqScannerParameters()
    app.next_event("scannerParameters")
    app.reqNewsProviders()
    app.next_event("newsProviders")
    app.reqMarketRule(26)
    app.next_event("marketRule")
    app.reqSoftDollarTiers(50)
    app.next_event("softDollarTiers", lambda a: a[0] == 50)
    app.reqFamilyCodes()
    app.next_event("familyCodes")
    app.reqMktDepthExchanges()
    app.next_event("mktDepthExchanges")
    app.reqSecDefOptParams(51, "AAPL", "", "STK", 265598)
    app.next_event("securityDefinitionOptionParameterEnd", lambda a: a[0] == 51)
    app.reqSmartComponents(52, "a6")
    app.next_event("smartComponents", lambda a: a[0] == 52)
    app.reqCurrentTime()  # a round trip: everything sent before it has been answered
    app.next_event("currentTime")
    while not app.events.empty():
        app.seen.append(app.events.get_nowait())
    assert not [a for n, a in app.seen if n == "error" and a[1] in (320, 321)], app.seen
