"""Contracts, snapshots (with the pre-flight poll), history, positions and the account summary."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from ib_nice_funcs.errors import MarketDataNotSubscribedError, NoDataError, UnknownSymbolError
from ib_nice_funcs.frames import OHLCV_COLUMNS
from ib_nice_funcs.symbols import parse_symbol
from ib_nice_funcs.timeframes import days_back_range, parse_timeframe

from .conftest import market_now, no_429

AAPL, MSFT = parse_symbol("AAPL"), parse_symbol("MSFT")
#: Our symbols -> the paper market's keys.
MARKET_KEY = {"EURUSD": "EUR.USD", "BTC-USD": "BTC", "ETH-USD": "ETH"}
EURUSD, BTC = parse_symbol("EURUSD"), parse_symbol("BTC-USD")


# --- contracts and snapshots -------------------------------------------------------------------


def test_prices_of_a_stock_fx_and_crypto_in_one_call(cp, source):
    got = source.prices([AAPL, EURUSD, BTC], timeout=10)
    assert set(got) == {"AAPL", "EURUSD", "BTC-USD"}
    for symbol, price in got.items():
        quote = cp.market.quote(MARKET_KEY.get(symbol, symbol))
        assert price == pytest.approx(quote.last, rel=0.02), symbol
    no_429(cp)


def test_conids_are_cached(cp, source):
    source.prices([MSFT], timeout=10)
    before = cp.request_counts()["GET /iserver/secdef/search"]
    source.prices([MSFT], timeout=10)
    assert cp.request_counts()["GET /iserver/secdef/search"] == before


def test_the_first_snapshot_only_subscribes_and_the_poll_waits_for_fields(fresh_cp, fresh_source):
    got = fresh_source.prices([AAPL], timeout=10)
    assert got["AAPL"] > 0
    counts = fresh_cp.request_counts()
    assert counts["GET /iserver/accounts"] == 1  # the pre-flight before the first snapshot
    assert counts["GET /iserver/marketdata/snapshot"] == 2  # subscribe, then read
    fresh_source.prices([AAPL], timeout=10)
    assert fresh_cp.request_counts()["GET /iserver/marketdata/snapshot"] == 3  # warm: one call


def test_snapshot_poll_gives_up_after_its_deadline(fresh_cp):
    from ib_nice_funcs.sources.portal import PortalSource

    from .conftest import settings_for

    fresh_cp.set(snapshot_warmup_s=60.0)  # fields never arrive within the test
    source = PortalSource(settings_for(fresh_cp))
    source.client.snapshot_wait = 0.6
    try:
        started = time.monotonic()
        assert source.prices([AAPL], timeout=10) == {"AAPL": None}
        assert time.monotonic() - started < 2.0
    finally:
        source.close()


def test_halted_last_price_has_its_prefix_stripped(cp, source):
    cp.set_halted("AAPL", True)
    try:
        price = source.prices([AAPL], timeout=10)["AAPL"]
        assert price == pytest.approx(cp.market.quote("AAPL").last, rel=0.01)
    finally:
        cp.set_halted("AAPL", False)


def test_no_market_data_is_its_own_error(fresh_cp, fresh_source):
    fresh_cp.set_md_availability("N")
    with pytest.raises(MarketDataNotSubscribedError, match="no market data"):
        fresh_source.prices([AAPL], timeout=10)


def test_unknown_symbols(cp, source):
    got = source.prices([AAPL, parse_symbol("ZZZQX")], timeout=10)
    assert got["AAPL"] > 0 and got["ZZZQX"] is None
    assert cp.request_counts()["GET /trsrv/stocks"] >= 1  # the second look-up was tried
    with pytest.raises(UnknownSymbolError, match="ZZZQX"):
        source.prices([parse_symbol("ZZZQX")], timeout=10)


# --- history --------------------------------------------------------------------------------------


def _check_frame(frame: pd.DataFrame, start, end, step_s: int) -> None:
    assert list(frame.columns) == list(OHLCV_COLUMNS)
    assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert frame["timestamp"].is_monotonic_increasing and frame["timestamp"].is_unique
    assert frame["timestamp"].iloc[0] >= pd.Timestamp(start) - pd.Timedelta(seconds=step_s)
    assert frame["timestamp"].iloc[-1] < pd.Timestamp(end)
    assert (frame["high"] >= frame["low"]).all()


def test_hourly_bars_in_one_request(cp, source):
    before = cp.request_counts()["GET /iserver/marketdata/history"]
    start, end = days_back_range(3, now=market_now(cp))
    frame = source.bars(BTC, parse_timeframe("1h"), start, end, timeout=10)
    assert 70 <= len(frame) <= 73  # crypto trades around the clock
    _check_frame(frame, start, end, 3600)
    assert cp.request_counts()["GET /iserver/marketdata/history"] == before + 1


def test_minute_bars_are_chunked_and_stitched(cp, source):
    before = cp.request_counts()["GET /iserver/marketdata/history"]
    start, end = days_back_range(1, now=market_now(cp))
    frame = source.bars(BTC, parse_timeframe("1m"), start, end, timeout=15)
    assert 1430 <= len(frame) <= 1440
    assert frame["timestamp"].diff().dropna().eq(pd.Timedelta(minutes=1)).all()  # no gaps
    _check_frame(frame, start, end, 60)
    assert cp.request_counts()["GET /iserver/marketdata/history"] == before + 3  # 3 x 8h
    no_429(cp)


def test_daily_bars_sit_at_midnight_utc(cp, source):
    start, end = days_back_range(30, now=market_now(cp))
    frame = source.bars(AAPL, parse_timeframe("1d"), start, end, timeout=10)
    assert 15 <= len(frame) <= 23  # trading days
    assert (frame["timestamp"].dt.floor("D") == frame["timestamp"]).all()


def test_fx_and_bars_of_unknown_symbols(cp, source):
    start, end = days_back_range(1, now=market_now(cp))
    frame = source.bars(EURUSD, parse_timeframe("15m"), start, end, timeout=10)
    assert list(frame.columns) == list(OHLCV_COLUMNS)
    with pytest.raises(UnknownSymbolError):
        source.bars(parse_symbol("ZZZQX"), parse_timeframe("1h"), start, end, timeout=10)


def test_a_range_without_bars_is_no_data(cp, source):
    # A Saturday: stocks have no session, not even extended hours (any date, any time of day).
    start = pd.Timestamp("2026-11-14 12:00", tz="UTC").to_pydatetime()
    end = start + pd.Timedelta(hours=3)
    with pytest.raises(NoDataError):
        source.bars(AAPL, parse_timeframe("1h"), start, end, timeout=10)


# --- portfolio --------------------------------------------------------------------------------


def test_positions_read_every_page(fresh_cp, fresh_source):
    fresh_cp.set(positions_page_size=1, questions=False)
    fresh_cp.set_price("BTC", 50_000.0)
    fresh_cp.set_price("ETH", 3_000.0)
    for symbol, qty in (("BTC-USD", 0.01), ("ETH-USD", 0.1)):
        result = fresh_source.place_order(symbol, "BUY", qty, client_order_id=f"pos-{symbol}")
        assert result["success"], result
    positions = fresh_source.positions(timeout=10)
    assert {p["symbol"]: p["quantity"] for p in positions} == {"BTC-USD": 0.01, "ETH-USD": 0.1}
    for p in positions:
        assert p["has_position"] and p["current_price"] > 0 and p["source"] == "portal"
    counts = fresh_cp.request_counts()
    assert counts["GET /portfolio/{acct}/positions/{page}"] == 3  # two full pages, one empty
    assert counts["GET /portfolio/accounts"] == 1  # the portfolio pre-flight, once


def test_account_summary(cp, source):
    summary = source.account_summary(timeout=10)
    assert summary["net_liquidation"] > 0 and summary["available_funds"] > 0
    assert summary["currency"] == "USD" and summary["account"] == cp.account
    assert "netliquidation" in summary["values"]
    assert source.is_paper(timeout=10) is True
