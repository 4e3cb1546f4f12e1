"""A scripted TWS API session as a user's agent runs it: ``python tws_session.py MODULE PORT``.

MODULE is ``ib_insync`` or ``ib_async`` (same API). It runs in its own
process (ib_insync patches asyncio with nest_asyncio; the test process must
not be touched by that) and prints one JSON object with what it saw. Every
wait is bounded; nothing here sleeps in place of an event: ``wait_for``
polls the client's own state while its event loop runs.
"""

from __future__ import annotations

import importlib
import json
import sys
import time


def main(module: str, port: int) -> dict:
    ib_mod = importlib.import_module(module)
    IB, Order = ib_mod.IB, ib_mod.Order
    ib = IB()
    ib.RequestTimeout = 20
    errors: list[tuple[int, int, str]] = []
    ib.errorEvent += lambda req_id, code, msg, *rest: errors.append((req_id, code, msg))
    ib.connect("127.0.0.1", port, clientId=7, timeout=20)
    out: dict = {}

    def wait_for(pred, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return True
            ib.sleep(0.05)  # runs the client's event loop; returns on the deadline
        return False

    account = ib.managedAccounts()[0]
    aapl = ib_mod.Stock("AAPL", "SMART", "USD")
    btc = ib_mod.Crypto("BTC", "PAXOS", "USD")
    ib.qualifyContracts(aapl, btc)
    # -- data
    ticker = ib.reqMktData(aapl)
    wait_for(lambda: ticker.last == ticker.last and ticker.bid > 0)  # NaN != NaN
    out["last"], out["bid"], out["ask"] = ticker.last, ticker.bid, ticker.ask
    ib.cancelMktData(aapl)
    # -- history: several timeframes of one contract back to back (no pacing refusals)
    out["bars"] = {bs: len(ib.reqHistoricalData(aapl, "", dur, bs, "TRADES", True))
                   for bs, dur in (("1 min", "1 D"), ("5 mins", "2 D"), ("15 mins", "3 D"),
                                   ("1 hour", "5 D"), ("4 hours", "10 D"), ("1 day", "1 M"),
                                   ("1 week", "1 Y"))}
    out["bid_ask"] = len(ib.reqHistoricalData(aapl, "", "1 D", "5 mins", "BID_ASK", True))
    out["adjusted"] = len(ib.reqHistoricalData(aapl, "", "1 M", "1 day", "ADJUSTED_LAST", True))
    live = ib.reqHistoricalData(aapl, "", "1 D", "1 min", "TRADES", True, keepUpToDate=True)
    out["keep_up"] = len(live)
    ib.cancelHistoricalData(live)
    rtb = ib.reqRealTimeBars(aapl, 5, "MIDPOINT", False)
    out["realtime_bars"] = wait_for(lambda: len(rtb) > 0)
    ib.cancelRealTimeBars(rtb)
    # -- reference lookups that must return (no reqId -1 errors)
    out["scanner_params"] = len(ib.reqScannerParameters())
    out["news_providers"] = ib.reqNewsProviders()
    out["market_rule"] = [(r.lowEdge, r.increment) for r in ib.reqMarketRule(26)]
    gainers = ib.reqScannerData(ib_mod.ScannerSubscription(
        instrument="STK", locationCode="STK.US.MAJOR", scanCode="TOP_PERC_GAIN",
        numberOfRows=5))
    out["scanner"] = [row.contractDetails.contract.symbol for row in gainers]
    # -- a bracket: the parent fills, both children protect it
    last = ticker.last
    bracket = ib.bracketOrder("BUY", 10, limitPrice=round(ticker.ask + 0.05, 2),
                              takeProfitPrice=round(last + 5, 2),
                              stopLossPrice=round(last - 5, 2))
    trades = [ib.placeOrder(aapl, o) for o in bracket]
    wait_for(lambda: trades[0].orderStatus.status == "Filled"
             and all(t.orderStatus.status == "Submitted" for t in trades[1:]))
    out["bracket"] = [t.orderStatus.status for t in trades]
    # -- transmit=False is held
    held = ib_mod.LimitOrder("BUY", 1, round(ticker.ask + 1, 2), transmit=False)
    held_trade = ib.placeOrder(aapl, held)
    wait_for(lambda: held_trade.orderStatus.status == "PreSubmitted")
    out["held"] = (held_trade.orderStatus.status, held_trade.orderStatus.filled)
    # -- OCA, then modify one of them, then cancel everything
    oca = ib.oneCancelsAll([ib_mod.LimitOrder("BUY", 1, round(last * 0.9, 2)),
                            ib_mod.LimitOrder("BUY", 1, round(last * 0.8, 2))], "oca-1", 1)
    oca_trades = [ib.placeOrder(aapl, o) for o in oca]
    wait_for(lambda: all(t.orderStatus.status == "Submitted" for t in oca_trades))
    oca[0].lmtPrice = round(last * 0.85, 2)
    ib.placeOrder(aapl, oca[0])
    wait_for(lambda: any(o.order.orderId == oca[0].orderId and o.order.lmtPrice == oca[0].lmtPrice
                         for o in ib.openTrades()))
    out["modified"] = oca[0].lmtPrice
    stop_limit = Order(action="SELL", orderType="STP LMT", totalQuantity=1,
                       auxPrice=round(last - 10, 2), lmtPrice=round(last - 11, 2), tif="GTC")
    stop_limit_trade = ib.placeOrder(aapl, stop_limit)
    wait_for(lambda: stop_limit_trade.orderStatus.status == "Submitted")
    out["stop_limit"] = stop_limit_trade.orderStatus.status
    ib.reqGlobalCancel()
    wait_for(lambda: not ib.openTrades())
    out["open_after_cancel_all"] = len(ib.openTrades())
    # -- crypto by cash
    cash_order = Order(action="BUY", orderType="MKT", totalQuantity=0, cashQty=1000, tif="IOC")
    cash_trade = ib.placeOrder(btc, cash_order)
    wait_for(lambda: cash_trade.orderStatus.status == "Filled")
    out["cash_qty"] = (cash_trade.orderStatus.status, cash_trade.orderStatus.filled)
    # -- a short sale too big for the account is refused up front
    big = ib.placeOrder(aapl, ib_mod.MarketOrder("SELL", 50_000))
    wait_for(lambda: big.orderStatus.status in ("Cancelled", "Inactive"))
    out["big_short"] = big.orderStatus.status
    # -- P&L and account
    pnl = ib.reqPnL(account)
    wait_for(lambda: pnl.unrealizedPnL == pnl.unrealizedPnL)
    out["pnl"] = (pnl.dailyPnL, pnl.unrealizedPnL, pnl.realizedPnL)
    single = ib.reqPnLSingle(account, "", aapl.conId)
    wait_for(lambda: single.position == single.position and single.position != 0)
    out["pnl_single"] = (single.position, single.value)
    ib.cancelPnL(account)
    ib.cancelPnLSingle(account, "", aapl.conId)
    out["what_if"] = float(ib.whatIfOrder(aapl, ib_mod.MarketOrder("BUY", 10)).initMarginChange)
    summary = {v.tag: v.value for v in ib.accountSummary(account)}
    out["net_liquidation"] = float(summary["NetLiquidation"])
    out["positions"] = {p.contract.symbol: p.position for p in ib.positions()}
    out["completed"] = len(ib.reqCompletedOrders(False))
    out["errors"] = errors
    ib.disconnect()
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2])), default=str))
