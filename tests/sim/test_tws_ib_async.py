"""The simulator driven by unmodified ib_async over loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
from ib_async import IB, Crypto, Forex, Stock

from ib_nice_funcs.sim import PacingRules, PaperMarket, run_simulator

from .conftest import OPEN_T, connect, run

AAPL = Stock("AAPL", "SMART", "USD")


def test_connect_syncs_and_reports_account(sim):
    async def go():
        ib = await connect(sim.port, 1)
        try:
            assert ib.isConnected() and ib.managedAccounts() == ["DU1234567"]
            assert ib.client.serverVersion() == 178
            tags = {v.tag: v.value for v in ib.accountValues() if v.currency == "USD"}
            assert float(tags["NetLiquidation"]) == 1_000_000.0
            summary = {v.tag: v.value for v in await ib.accountSummaryAsync()}
            assert float(summary["AvailableFunds"]) == 1_000_000.0
            assert ib.positions() == [] and ib.openTrades() == []
            now = await ib.reqCurrentTimeAsync()
            assert now.timestamp() == int(OPEN_T)
        finally:
            ib.disconnect()

    run(go())
    counts = sim.request_counts()
    for name in ("startApi", "reqPositions", "reqOpenOrders", "reqCompletedOrders",
                 "reqAccountUpdates", "reqAccountUpdatesMulti", "reqExecutions"):
        assert counts[name] == 1, name


def test_several_clients_and_duplicate_client_id(sim):
    async def go():
        a = await connect(sim.port, 5)
        b = await connect(sim.port, 6)
        dup = IB()
        errors = []
        dup.errorEvent += lambda req_id, code, msg, contract: errors.append(code)
        # TWS answers 326 and closes; ib_async itself then waits for its timeout
        with pytest.raises((ConnectionError, asyncio.TimeoutError, TimeoutError)):
            await dup.connectAsync("127.0.0.1", sim.port, clientId=5, timeout=1)
        assert errors == [326] and not dup.isConnected()
        assert a.isConnected() and b.isConnected()
        a.disconnect()
        b.disconnect()

    run(go())


def test_qualify_each_asset_class(sim):
    async def go():
        ib = await connect(sim.port)
        try:
            cs = [Stock("AAPL", "SMART", "USD"), Forex("EURUSD"), Crypto("BTC", "PAXOS", "USD"),
                  Stock("BRK B", "SMART", "USD"), Stock("SPY", "ARCA", "USD")]
            got = await ib.qualifyContractsAsync(*cs)
            assert [c.conId for c in got] == [265598, 12087792, 479624278, 72063691, 756733]
            assert got[0].primaryExchange == "NASDAQ" and got[0].exchange == "SMART"
            assert got[1].localSymbol == "EUR.USD" and got[1].secType == "CASH"
            assert got[2].secType == "CRYPTO"
            [details] = await ib.reqContractDetailsAsync(Crypto("BTC", "PAXOS", "USD"))
            assert details.minSize == 0.0001 and details.sizeIncrement == 0.0001
            assert details.timeZoneId == "US/Central" and details.tradingHours
            [fx] = await ib.reqContractDetailsAsync(Forex("USDJPY"))
            assert fx.minTick == 0.005
            assert await ib.reqContractDetailsAsync(Stock("NOPE", "SMART", "USD")) == []
            matches = await ib.reqMatchingSymbolsAsync("AAP")
            assert [m.contract.symbol for m in matches] == ["AAPL"]
        finally:
            ib.disconnect()

    errors = []

    async def go_errors():
        ib = await connect(sim.port, 2)
        ib.errorEvent += lambda req_id, code, msg, contract: errors.append((code, msg))
        await ib.reqContractDetailsAsync(Stock("NOPE", "SMART", "USD"))
        ib.disconnect()

    run(go())
    run(go_errors())
    assert (200, "No security definition has been found for the request") in errors


def test_snapshot_tickers(sim):
    async def go():
        ib = await connect(sim.port)
        try:
            cs = await ib.qualifyContractsAsync(AAPL, Forex("EURUSD"),
                                                Crypto("ETH", "PAXOS", "USD"))
            tickers = await ib.reqTickersAsync(*cs)
            for t in tickers:
                assert 0 < t.bid < t.ask, t
                assert t.bidSize > 0 and t.askSize > 0
                assert t.close > 0 and t.marketDataType == 1
            stock, fx, eth = tickers
            assert stock.bid <= stock.last <= stock.ask and stock.volume > 0
            assert fx.last != fx.last  # IDEALPRO sends no last price (nan)
            assert eth.last > 0
            ib.reqMarketDataType(3)
            [delayed] = await ib.reqTickersAsync(cs[0])
            assert delayed.marketDataType == 3 and 0 < delayed.bid < delayed.ask
        finally:
            ib.disconnect()

    run(go())


def test_streaming_ticks_until_cancel(sim, clock):
    async def go():
        ib = await connect(sim.port)
        try:
            [c] = await ib.qualifyContractsAsync(Crypto("BTC", "PAXOS", "USD"))
            ticker = ib.reqMktData(c)
            for _ in range(100):
                if ticker.bid == ticker.bid and ticker.bid > 0:
                    break
                await asyncio.sleep(0.02)
            first = ticker.last
            clock.t += 30  # the market moves on
            for _ in range(200):
                if ticker.last != first:
                    break
                await asyncio.sleep(0.02)
            assert ticker.last != first
            ib.cancelMktData(c)
            await asyncio.sleep(0.2)
            before = ticker.last
            clock.t += 30
            await asyncio.sleep(0.3)
            assert ticker.last == before
        finally:
            ib.disconnect()

    run(go())


@pytest.mark.parametrize("bar,duration,rth,expected", [
    ("1 min", "1 D", True, 31),          # today since 09:30 up to 10:00:30
    ("1 min", "2 D", True, 390 + 31),
    ("5 mins", "2 D", False, 192 + 73),  # yesterday 04:00-20:00, today 04:00-10:00:30
    ("1 hour", "5 D", True, 4 * 7 + 2),  # 09:30 and 10:00 bars today
    ("1 day", "1 M", True, 22),
    ("1 week", "1 Y", True, 53),
    ("30 secs", "3600 S", True, 62),  # 09:30:00 .. 10:00:30 (forming)
])
def test_historical_bar_counts(sim, bar, duration, rth, expected):
    async def go():
        ib = await connect(sim.port)
        try:
            bars = await ib.reqHistoricalDataAsync(AAPL, "", duration, bar, "TRADES", rth, 1,
                                                   timeout=10)
        finally:
            ib.disconnect()
        return bars

    bars = run(go())
    assert len(bars) == expected
    for b in bars:
        assert b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high
        assert b.volume > 0 and b.barCount > 0
    dates = [b.date for b in bars]
    assert dates == sorted(dates) and len(set(dates)) == len(dates)


def test_historical_format_date_2_and_explicit_end(sim):
    end = dt.datetime(2024, 3, 5, 18, 0, tzinfo=dt.timezone.utc)

    async def go():
        ib = await connect(sim.port)
        try:
            [fx] = await ib.qualifyContractsAsync(Forex("EURUSD"))
            mid = await ib.reqHistoricalDataAsync(fx, end, "7200 S", "5 mins", "MIDPOINT",
                                                  False, 2, timeout=10)
            text_end = await ib.reqHistoricalDataAsync(fx, "20240305-18:00:00", "7200 S",
                                                       "5 mins", "BID", False, 2, timeout=10)
            day = await ib.reqHistoricalDataAsync(fx, end, "5 D", "1 day", "ASK", False, 2,
                                                  timeout=10)
        finally:
            ib.disconnect()
        return mid, text_end, day

    mid, bid, day = run(go())
    assert len(mid) == 24 and len(bid) == 24
    assert all(b.date.tzinfo == dt.timezone.utc for b in mid)
    assert mid[-1].date == end - dt.timedelta(minutes=5)
    assert all(b.volume == -1 for b in mid)
    assert all(b_.close < m.close for b_, m in zip(bid, mid, strict=False))
    assert [type(b.date) for b in day] == [dt.date] * 5


def test_historical_errors(sim):
    errors: list[tuple[int, int, str]] = []

    async def go():
        ib = await connect(sim.port)
        ib.errorEvent += lambda req_id, code, msg, contract: errors.append((req_id, code, msg))
        try:
            [fx] = await ib.qualifyContractsAsync(Forex("EURUSD"))
            assert not await ib.reqHistoricalDataAsync(fx, "", "1 D", "1 min", "TRADES", False,
                                                       1, timeout=5)
            assert not await ib.reqHistoricalDataAsync(AAPL, "", "1 D", "1 secs", "TRADES", True,
                                                       1, timeout=5)
            # 321 is a warning for ib_async: the request only ends on its timeout
            assert not await ib.reqHistoricalDataAsync(AAPL, "", "1 D", "1 minute", "TRADES",
                                                       True, 1, timeout=0.5)
        finally:
            ib.disconnect()

    run(go())
    codes = [(code, msg) for _, code, msg in errors]
    assert any(code == 162 and "No historical market data for EUR/CASH" in m for code, m in codes)
    assert any(code == 162 and "Time length exceed max" in m for code, m in codes)
    assert any(code == 321 and "bar size setting is invalid" in m for code, m in codes)


def test_pacing_violation_when_enforced_and_not_when_disabled(sim):
    sim.set_pacing(PacingRules(identical_s=0.5, burst_count=6, burst_window_s=2,
                               max_requests=60, window_s=600))
    errors: list[tuple[int, str]] = []

    async def go():
        ib = await connect(sim.port)
        ib.errorEvent += lambda req_id, code, msg, contract: errors.append((code, msg))
        try:
            first = await ib.reqHistoricalDataAsync(AAPL, "", "1800 S", "5 secs", "TRADES",
                                                    True, 1, timeout=5)
            again = await ib.reqHistoricalDataAsync(AAPL, "", "1800 S", "5 secs", "TRADES",
                                                    True, 1, timeout=5)
            return first, again
        finally:
            ib.disconnect()

    first, again = run(go())
    assert first and len(again) == 0
    assert any(code == 162 and "pacing violation" in msg for code, msg in errors)

    errors.clear()
    sim.set_enforce_pacing(False)
    first, again = run(go())
    assert first and again and not errors


def test_pacing_burst_of_six_applies_to_small_bars_only(sim):
    """IB's "6 requests for one contract within 2 s" rule covers bars of 30 s or less."""
    async def go(bar_size):
        ib = await connect(sim.port)
        try:
            results = []
            for dur in ("600 S", "900 S", "1200 S", "1500 S", "1800 S", "2100 S"):
                results.append(await ib.reqHistoricalDataAsync(AAPL, "", dur, bar_size, "TRADES",
                                                               True, 1, timeout=5))
            return results
        finally:
            ib.disconnect()

    results = run(go("5 secs"))
    assert all(results[:5]) and len(results[5]) == 0
    assert all(run(go("1 min")))  # an agent fetching several timeframes is not refused


def test_keep_up_to_date_updates(sim, clock):
    async def go():
        ib = await connect(sim.port)
        try:
            [btc] = await ib.qualifyContractsAsync(Crypto("BTC", "PAXOS", "USD"))
            bars = await ib.reqHistoricalDataAsync(btc, "", "3600 S", "1 min", "AGGTRADES", False,
                                                   2, keepUpToDate=True, timeout=5)
            n = len(bars)
            clock.t += 180  # three bars complete between two updates: all of them arrive
            for _ in range(250):
                if len(bars) >= n + 3:
                    break
                await asyncio.sleep(0.02)
            assert len(bars) == n + 3
            steps = {(b.date - a.date).total_seconds()
                     for a, b in zip(bars, bars[1:], strict=False)}
            assert steps == {60.0}
            ib.cancelHistoricalData(bars)
        finally:
            ib.disconnect()

    run(go())


def test_same_seed_same_answers_across_instances():
    def fetch(seed):
        market = PaperMarket(seed=seed, clock=lambda: OPEN_T)
        with run_simulator(market=market) as h:
            async def go():
                ib = await connect(h.port)
                try:
                    bars = await ib.reqHistoricalDataAsync(AAPL, "", "2 D", "15 mins", "TRADES",
                                                           True, 2, timeout=10)
                    [t] = await ib.reqTickersAsync((await ib.qualifyContractsAsync(AAPL))[0])
                finally:
                    ib.disconnect()
                return [(b.date, b.open, b.high, b.low, b.close, b.volume) for b in bars], \
                    (t.bid, t.ask, t.last)

            return run(go())

    a, b, c = fetch(42), fetch(42), fetch(43)
    assert a == b
    assert a != c


def test_refuse_new_fails_fast(sim):
    sim.set_refuse_new(True)

    async def go():
        ib = IB()
        t0 = time.monotonic()
        with pytest.raises((ConnectionError, OSError, asyncio.TimeoutError, TimeoutError)):
            await ib.connectAsync("127.0.0.1", sim.port, clientId=9, timeout=4)
        return time.monotonic() - t0

    assert run(go()) < 2.0
    sim.set_refuse_new(False)
    run(_connect_and_close(sim.port))


def test_blackhole_times_out_within_timeout(sim):
    async def hung_connection_stays_hung():
        ib = await connect(sim.port, 31)
        try:
            await asyncio.get_running_loop().run_in_executor(None, sim.set_blackhole, True)
            with pytest.raises((asyncio.TimeoutError, TimeoutError)):
                await asyncio.wait_for(ib.reqCurrentTimeAsync(), 0.5)
            await asyncio.get_running_loop().run_in_executor(None, sim.set_blackhole, False)
            with pytest.raises((asyncio.TimeoutError, TimeoutError)):
                await asyncio.wait_for(ib.reqCurrentTimeAsync(), 0.5)
        finally:
            ib.disconnect()

    run(hung_connection_stays_hung())
    run(_connect_and_close(sim.port))
    sim.set_blackhole(True)

    async def go():
        ib = IB()
        t0 = time.monotonic()
        with pytest.raises((asyncio.TimeoutError, TimeoutError)):
            await ib.connectAsync("127.0.0.1", sim.port, clientId=9, timeout=1.0)
        return time.monotonic() - t0

    elapsed = run(go())
    assert 0.9 <= elapsed < 3.0
    sim.set_blackhole(False)
    run(_connect_and_close(sim.port))


def test_drop_connections_is_seen_by_client(sim):
    async def go():
        ib = await connect(sim.port)
        gone = asyncio.Event()
        ib.disconnectedEvent += lambda: gone.set()
        await asyncio.get_running_loop().run_in_executor(None, sim.drop_connections)
        await asyncio.wait_for(gone.wait(), 5)
        assert not ib.isConnected()

    run(go())
    run(_connect_and_close(sim.port))


def test_latency_delays_replies(sim):
    sim.set_latency(0.3)

    async def go():
        ib = await connect(sim.port, timeout=10)
        try:
            t0 = time.monotonic()
            await ib.reqCurrentTimeAsync()
            return time.monotonic() - t0
        finally:
            ib.disconnect()

    assert run(go()) >= 0.3
    sim.set_latency(0.0)


async def _connect_and_close(port: int) -> None:
    ib = await connect(port, 77)
    assert ib.isConnected()
    ib.disconnect()


def test_simulator_on_the_callers_event_loop():
    from ib_nice_funcs.sim import TWSSimulator

    async def go():
        sim = TWSSimulator(PaperMarket(seed=7, clock=lambda: OPEN_T), account="DU7654321")
        await sim.start()
        try:
            assert sim.port > 0
            ib = await connect(sim.port, 3)
            assert ib.managedAccounts() == ["DU7654321"] and sim.active_connections == 1
            ib.disconnect()
            for _ in range(100):
                if sim.active_connections == 0:
                    break
                await asyncio.sleep(0.02)
            assert sim.active_connections == 0 and sim.connections == 1
            assert sim.request_counts["startApi"] == 1
        finally:
            await sim.stop()

    run(go())


def test_unsupported_requests_answer_with_their_own_id_so_no_call_hangs(sim):
    """What the simulator cannot serve gets IB's error for it with the request's id, a code
    clients take for an error (not a warning, as ib_async takes 321): the call returns."""
    errors: list[tuple[int, int]] = []

    async def go():
        ib = await connect(sim.port)
        ib.errorEvent += lambda req_id, code, msg, contract: errors.append((req_id, code))
        try:
            [aapl] = await ib.qualifyContractsAsync(AAPL)
            calls = (ib.reqFundamentalDataAsync(aapl, "ReportSnapshot"),
                     ib.reqHistogramDataAsync(aapl, True, "1 week"),
                     ib.reqNewsArticleAsync("BRFG", "BRFG$1"))
            return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)
        finally:
            ib.disconnect()

    results = run(go())
    assert len(results) == 3
    refused = [(req_id, code) for req_id, code in errors if code in (430, 162, 10276)]
    assert len(refused) == 3 and all(req_id > 0 for req_id, _ in refused)


def test_historical_ticks(sim):
    async def go():
        ib = await connect(sim.port)
        try:
            [aapl] = await ib.qualifyContractsAsync(AAPL)
            trades = await ib.reqHistoricalTicksAsync(
                aapl, "", "20240306 10:00:00 US/Eastern", 50, "TRADES", True)
            quotes = await ib.reqHistoricalTicksAsync(
                aapl, "20240306 09:40:00 US/Eastern", "", 20, "BID_ASK", True)
            mids = await ib.reqHistoricalTicksAsync(
                aapl, "20240306 09:40:00 US/Eastern", "", 5, "MIDPOINT", True)
            return trades, quotes, mids
        finally:
            ib.disconnect()

    trades, quotes, mids = run(go())
    assert len(trades) == 50 and len(quotes) == 20 and len(mids) == 5
    end = dt.datetime(2024, 3, 6, 15, 0, tzinfo=dt.timezone.utc)
    assert trades[-1].time < end and trades[0].time < trades[-1].time
    assert all(t.price > 0 and t.size > 0 for t in trades)
    assert all(q.priceBid < q.priceAsk for q in quotes)
    assert quotes[0].time == dt.datetime(2024, 3, 6, 14, 40, tzinfo=dt.timezone.utc)


def test_tick_by_tick_streams_while_the_quote_moves(sim, clock):
    async def go():
        ib = await connect(sim.port)
        seen: list = []
        try:
            [aapl] = await ib.qualifyContractsAsync(AAPL)
            ticker = ib.reqTickByTickData(aapl, "BidAsk")
            ticker.updateEvent += lambda t: seen.extend(t.tickByTicks)
            for _ in range(250):
                if seen:
                    break
                await asyncio.sleep(0.02)
            first = len(seen)
            sim.set_price("AAPL", seen[-1].bidPrice + 1)
            for _ in range(250):
                if len(seen) > first:
                    break
                await asyncio.sleep(0.02)
            ib.cancelTickByTickData(aapl, "BidAsk")
            return first, seen
        finally:
            sim.set_price("AAPL", None)
            ib.disconnect()

    first, ticks = run(go())
    assert first >= 1 and len(ticks) > first
    assert all(t.bidPrice < t.askPrice for t in ticks)
    assert ticks[-1].bidPrice > ticks[0].bidPrice  # the new price came through


def test_scanner_ranks_the_catalog_stocks(sim):
    from ib_async import ScannerSubscription

    async def go():
        ib = await connect(sim.port)
        try:
            sub = ScannerSubscription(instrument="STK", locationCode="STK.US.MAJOR",
                                      scanCode="TOP_PERC_LOSE", numberOfRows=4)
            losers = await ib.reqScannerDataAsync(sub)
            bad = await ib.reqScannerDataAsync(ScannerSubscription(
                instrument="STK", locationCode="STK.US.MAJOR", scanCode="NO_SUCH_SCAN"))
            [t] = await ib.reqTickersAsync(losers[0].contractDetails.contract)
            [u] = await ib.reqTickersAsync(losers[-1].contractDetails.contract)
            return losers, bad, t, u
        finally:
            ib.disconnect()

    losers, bad, first, last = run(go())
    assert [r.rank for r in losers] == [0, 1, 2, 3] and len(bad) == 0
    assert first.last / first.close <= last.last / last.close  # the biggest loser ranks first


def test_half_open_holds_everything_until_heal(sim):
    async def go():
        ib = await connect(sim.port, 41)
        try:
            off_thread = asyncio.get_running_loop().run_in_executor
            notices: asyncio.Queue = asyncio.Queue()
            ib.errorEvent += lambda req_id, code, msg, contract: notices.put_nowait(code)
            await off_thread(None, sim.half_open)
            asked = asyncio.ensure_future(ib.reqCurrentTimeAsync())
            done, _ = await asyncio.wait([asked], timeout=0.5)
            assert not done and ib.isConnected()  # open, but silent: the request is lost
            other = await connect(sim.port, 42)  # a new connection is served
            assert (await other.reqCurrentTimeAsync()).timestamp() == int(OPEN_T)
            other.disconnect()
            await off_thread(None, sim.broadcast_error, 1102)  # held back...
            assert notices.empty()
            await off_thread(None, sim.heal)
            assert await asyncio.wait_for(notices.get(), 5) == 1102  # ...and sent on heal
            assert (await asyncio.wait_for(ib.reqCurrentTimeAsync(), 5)).timestamp() == int(OPEN_T)
            asked.cancel()
        finally:
            ib.disconnect()

    run(go())


def test_broadcast_error_reaches_every_client(sim):
    async def go():
        a, b = await connect(sim.port, 43), await connect(sim.port, 44)
        try:
            seen: list[tuple[int, int]] = []
            both = asyncio.Event()

            def note(req_id, code, message, contract):
                seen.append((req_id, code))
                if len(seen) == 2:
                    both.set()

            a.errorEvent += note
            b.errorEvent += note
            await asyncio.get_running_loop().run_in_executor(None, sim.broadcast_error, 1100)
            await asyncio.wait_for(both.wait(), 5)
            assert seen == [(-1, 1100), (-1, 1100)]
        finally:
            a.disconnect()
            b.disconnect()

    run(go())
