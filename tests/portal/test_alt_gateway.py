"""The client against a second, different Client Portal fake (see alt_gateway.py)."""

from __future__ import annotations

import pytest

from ib_nice_funcs import Client
from ib_nice_funcs.config import Settings
from ib_nice_funcs.sources.portal import PortalSource
from ib_nice_funcs.symbols import parse_symbol
from ib_nice_funcs.timeframes import days_back_range, parse_timeframe

from .alt_gateway import ACCOUNT, run_alt_gateway
from .conftest import fast_client


@pytest.fixture
def alt():
    with run_alt_gateway() as (url, state):
        fast_client(url)
        source = PortalSource(Settings(portal_url=url, timeout=10))
        try:
            yield url, state, source
        finally:
            source.close()


def test_data_from_a_different_gateway(alt):
    url, state, source = alt
    got = source.prices([parse_symbol("AAPL"), parse_symbol("BTC-USD")], timeout=10)
    assert got == {"AAPL": 187.5, "BTC-USD": pytest.approx(64_005.0)}
    assert state.counts["GET /iserver/auth/status"] == 1  # after a 405 on POST
    assert state.counts["POST /iserver/secdef/search"] == 2  # after 405s on GET
    assert state.counts["GET /iserver/marketdata/snapshot"] == 1  # no pre-flight poll needed
    start, end = days_back_range(1)
    frame = source.bars(parse_symbol("AAPL"), parse_timeframe("1h"), start, end, timeout=10)
    assert 23 <= len(frame) <= 25 and (frame["volume"] == 0).all()
    with Client(sources="portal", portal_url=url, timeout=10) as client:
        assert client.ohlcv("AAPL", "1h", 1).attrs["source"] == "portal"


def test_orders_and_portfolio_on_a_different_gateway(alt):
    url, state, source = alt
    assert source.is_paper(timeout=10) is True  # no isPaper: the D prefix decides
    placed = source.place_order("AAPL", "BUY", 1, "LMT", limit_price=180.0,
                                client_order_id="alt-1")
    assert placed["success"] and placed["order_id"] == 555 and placed["status"] == "Submitted"
    assert placed["questions"] == ["Are you sure?"]
    again = source.place_order("AAPL", "BUY", 1, "LMT", limit_price=180.0,
                               client_order_id="alt-1")
    assert again["existing"] and len(state.orders) == 1
    found = PortalSource(Settings(portal_url=url)).find_order("alt-1", timeout=10)
    assert found is not None and found["order_id"] == 555 and found["side"] == "BUY"
    assert [o["client_order_id"] for o in source.open_orders(timeout=10)] == ["alt-1"]
    cancelled = source.cancel_order(555, timeout=10)
    assert cancelled["success"] and cancelled["status"] == "PendingCancel"  # no status endpoint
    positions = source.positions(timeout=10)
    assert positions == [pytest.approx(positions[0])] and positions[0]["symbol"] == "AAPL"
    assert positions[0]["quantity"] == 3 and positions[0]["unrealized_pnl"] == pytest.approx(22.5)
    summary = source.account_summary(timeout=10)
    assert summary["net_liquidation"] == 100000.0 and summary["available_funds"] == 50000.0
    assert summary["account"] == ACCOUNT
