"""The portal source end to end through the Client and the registry, and failover from TWS."""

from __future__ import annotations

import itertools
import time

import pytest

from ib_nice_funcs import Client
from ib_nice_funcs.frames import CLASSIC_COLUMNS, OHLCV_COLUMNS

from .conftest import no_429, speed_up

_client_ids = itertools.count(900)


def test_client_with_the_portal_as_its_only_source(cp):
    with Client(sources="portal", portal_url=cp.url, portal_ca=cp.ca_path, timeout=10,
                clock=cp.market.clock) as client:
        assert client.price("AAPL") > 0
        assert set(client.prices(["MSFT", "EURUSD", "BTC-USD"])) == {"MSFT", "EURUSD", "BTC-USD"}
        frame = client.ohlcv("BTC-USD", "4h", 3)
        assert frame.attrs["source"] == "portal" and list(frame.columns) == list(OHLCV_COLUMNS)
        assert len(frame) >= 17
        classic = client.classic_data("BTC-USD", 5, "1h")
        assert list(classic.columns) == list(CLASSIC_COLUMNS)
        assert classic.attrs["source"] == "portal"
        client._source("portal").close()
    no_429(cp)


def test_module_level_functions_through_the_portal(cp):
    import ib_nice_funcs as n

    n.configure(sources="portal", portal_url=cp.url, portal_ca=cp.ca_path, timeout=10,
                clock=cp.market.clock)
    assert n.token_price("AAPL") > 0
    assert n.get_ohlcv_data("BTC-USD", "1h", 1).attrs["source"] == "portal"
    assert n.token_price("ZZZQX") is None  # an operational failure: None, no exception


def test_the_portal_url_alone_puts_the_portal_between_ib_and_yahoo(cp):
    with Client(portal_url=cp.url) as client:
        assert client.source_order() == ["ib", "portal", "yfinance"]


@pytest.fixture
def tws_and_portal():
    """The TWS simulator with a Client Portal simulator sharing its market and orders."""
    from ib_nice_funcs.sim import run_simulator

    with run_simulator(seed=5, portal=True) as tws:
        speed_up(tws.portal)
        tws.market.set_price("BTC", 50_000.0)
        yield tws


def test_data_fails_over_to_the_portal_when_tws_drops(tws_and_portal):
    tws, cp = tws_and_portal, tws_and_portal.portal
    with Client(host="127.0.0.1", port=tws.port, client_id=next(_client_ids),
                sources="ib,portal,yfinance", portal_url=cp.url, portal_ca=cp.ca_path,
                timeout=10) as client:
        assert client.ohlcv("BTC-USD", "1h", 1).attrs["source"] == "ib"
        assert cp.request_counts() == {}  # the portal is not touched while TWS answers
        tws.set_refuse_new(True)
        tws.drop_connections()
        started = time.monotonic()
        frame = client.ohlcv("BTC-USD", "1h", 2)
        assert frame.attrs["source"] == "portal" and len(frame) >= 47
        assert client.price("ETH-USD") > 0
        assert cp.request_counts()["GET /iserver/marketdata/snapshot"] >= 1
        assert time.monotonic() - started < 8
        client._source("portal").close()
    no_429(cp)


def test_an_order_placed_over_tws_is_not_placed_again_over_the_portal(tws_and_portal):
    from ib_nice_funcs.sources.portal import PortalSource

    tws, cp = tws_and_portal, tws_and_portal.portal
    with Client(host="127.0.0.1", port=tws.port, client_id=next(_client_ids), sources="ib",
                portal_url=cp.url, portal_ca=cp.ca_path, timeout=10) as client:
        placed = client.trading.place_order("BTC-USD", "BUY", 0.01, client_order_id="fo-1")
        assert placed["success"], placed
        tws.set_refuse_new(True)
        tws.drop_connections()
        portal = PortalSource(client.settings)
        try:
            found = portal.find_order("fo-1", timeout=10)
            assert found is not None and found["existing"]
            assert found["status"] == "Filled" and found["symbol"] == "BTC-USD"
            assert found["filled_qty"] == pytest.approx(0.01)
            # The failover path: the same cOID through the portal returns that order.
            again = portal.place_order("BTC-USD", "BUY", 0.01, client_order_id="fo-1")
            assert again["existing"] and again["success"]
            assert cp.order_count == 0  # nothing was sent over REST
            fresh = portal.place_order("BTC-USD", "BUY", 0.01, client_order_id="fo-2")
            assert fresh["success"] and not fresh.get("existing") and cp.order_count == 1
            positions = {p["symbol"]: p["quantity"] for p in portal.positions(timeout=10)}
            assert positions["BTC-USD"] == pytest.approx(0.02)  # one book behind both APIs
        finally:
            portal.close()
