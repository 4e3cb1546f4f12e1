"""The market-hours clock: what a closed market, the close and outsideRth do to orders."""

from __future__ import annotations

from ib_nice_funcs.sim import MarketClock, PaperMarket
from ib_nice_funcs.sim.matching import MatchingEngine, SimOrder


def _setup(when: str):
    clock = MarketClock.at(when, running=False)  # paused: the test moves it
    market = PaperMarket(seed=2, clock=clock)
    return clock, market, MatchingEngine(market, "DU1", 1_000_000.0)


def _order(engine, oid, action, qty, kind, **kw):
    return SimOrder(order_id=oid, client_id=1, perm_id=0, account="",
                    inst=engine.market.get("AAPL"), action=action, quantity=qty,
                    order_type=kind, **kw)


def test_moc_fills_at_the_close_once_the_clock_passes_16_00():
    clock, market, engine = _setup("2024-03-06 15:59:50")
    moc = _order(engine, 1, "BUY", 10, "MOC")
    engine.submit(moc, clock())
    assert moc.status == "Submitted" and moc.filled == 0
    clock.advance(5)
    engine.on_time(clock())
    assert moc.filled == 0  # 15:59:55: not yet
    clock.advance(10)
    engine.on_time(clock())
    close = market.bars("AAPL", clock() - 86400, clock(), 86400, "day", use_rth=True).close[-1]
    assert moc.status == "Filled" and moc.avg_fill_price == float(close)


def test_before_the_open_only_outside_rth_limit_orders_work():
    clock, market, engine = _setup("2024-03-06 08:00")
    ask = market.quote("AAPL", clock()).ask
    mkt = _order(engine, 1, "BUY", 1, "MKT")
    lmt = _order(engine, 2, "BUY", 1, "LMT", lmt_price=round(ask + 1, 2))
    ext = _order(engine, 3, "BUY", 1, "LMT", lmt_price=round(ask + 1, 2), outside_rth=True)
    for o in (mkt, lmt, ext):
        engine.submit(o, clock())
    assert (mkt.status, lmt.status, ext.status) == ("PreSubmitted", "PreSubmitted", "Filled")
    clock.set(MarketClock.at("2024-03-06 09:30:01")())
    engine.on_time(clock())
    assert mkt.status == "Filled" and lmt.status == "Filled"


def test_a_weekend_clock_keeps_stock_orders_waiting_and_crypto_trading():
    clock, market, engine = _setup("2024-03-09 12:00")
    stock = _order(engine, 1, "BUY", 1, "MKT")
    engine.submit(stock, clock())
    btc = SimOrder(order_id=2, client_id=1, perm_id=0, account="", inst=market.get("BTC"),
                   action="BUY", quantity=0.01, order_type="MKT")
    engine.submit(btc, clock())
    assert stock.status == "PreSubmitted" and btc.status == "Filled"


def test_day_orders_expire_at_the_close_and_gtc_orders_rest():
    clock, market, engine = _setup("2024-03-06 15:00")
    bid = market.quote("AAPL", clock()).bid
    day = _order(engine, 1, "BUY", 1, "LMT", lmt_price=round(bid * 0.9, 2))
    gtc = _order(engine, 2, "BUY", 1, "LMT", lmt_price=round(bid * 0.9, 2), tif="GTC")
    ext = _order(engine, 3, "BUY", 1, "LMT", lmt_price=round(bid * 0.9, 2), outside_rth=True)
    for o in (day, gtc, ext):
        engine.submit(o, clock())
    clock.set(MarketClock.at("2024-03-06 16:00:01")())
    engine.on_time(clock())
    assert day.status == "Cancelled" and gtc.is_open and ext.is_open  # ext: until 20:00
    clock.set(MarketClock.at("2024-03-06 20:00:01")())
    engine.on_time(clock())
    assert ext.status == "Cancelled" and gtc.is_open


def test_ioc_cancels_the_rest_and_fok_fills_whole_or_not_at_all():
    clock, market, engine = _setup("2024-03-06 11:00")
    engine.partial_fills = True
    q = market.quote("AAPL", clock())
    far = _order(engine, 1, "BUY", 10, "LMT", lmt_price=round(q.bid * 0.9, 2), tif="IOC")
    engine.submit(far, clock())
    assert far.status == "Cancelled" and far.filled == 0
    ioc = _order(engine, 2, "BUY", 10, "LMT", lmt_price=q.ask, tif="IOC")
    engine.submit(ioc, clock())
    assert ioc.status == "Cancelled" and 0 < ioc.filled < 10  # partial fill, rest cancelled
    fok = _order(engine, 3, "BUY", 10, "LMT", lmt_price=q.ask, tif="FOK")
    engine.submit(fok, clock())
    assert fok.status == "Filled" and fok.filled == 10
