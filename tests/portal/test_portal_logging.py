"""No cookie, session id or account number in any log line, even at DEBUG."""

from __future__ import annotations

import logging
import time

import pytest

from ib_nice_funcs.errors import ConfigurationError
from ib_nice_funcs.portal.client import PortalClient
from ib_nice_funcs.symbols import parse_symbol
from ib_nice_funcs.timeframes import days_back_range, parse_timeframe

from .conftest import market_now, open_source

COOKIE = "c00kie-SECRET-7f3a9"


def test_secrets_never_reach_the_logs(fresh_cp, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's included
    sim = fresh_cp.sim
    account = fresh_cp.account
    session_id = sim.stable_hex("session", sim.seed, n=32)  # what /tickle answers
    sess = sim.stable_hex("sess", n=8)  # /iserver/accounts' sessionId
    with open_source(fresh_cp) as source:
        # As if the gateway had set its session cookie.
        source.client.http.session.cookies.set("api", COOKIE)
        fresh_cp.set_no_bridge(True)  # re-auth path logs too
        assert source.prices([parse_symbol("AAPL"), parse_symbol("BTC-USD")], timeout=10)
        start, end = days_back_range(1, now=market_now(fresh_cp))
        source.bars(parse_symbol("BTC-USD"), parse_timeframe("1h"), start, end, timeout=10)
        source.client.session.tickle()
        placed = source.place_order("BTC-USD", "BUY", 0.01, client_order_id="log-1")
        assert placed["success"]
        source.place_order("AAPL", "BUY", 1, "LMT", limit_price=1.0, client_order_id="log-2")
        source.cancel_order("log-2")
        source.positions(timeout=10)
        source.account_summary(timeout=10)
        source.open_orders(timeout=10)
    lines = [(r.name, r.getMessage()) for r in caplog.records]
    assert any(name.startswith("ib_nice_funcs.portal") for name, _ in lines)  # it did log
    assert any("/iserver/account/" in text for _, text in lines)
    for name, text in lines:
        assert COOKIE not in text, (name, text)
        assert session_id not in text and sess not in text, (name, text)
        if not name.startswith("ib_nice_funcs.sim"):  # the fake gateway may name its own
            assert account not in text, (name, text)  # masked: DU…67


def test_errors_name_accounts_only_masked(fresh_cp):
    client = PortalClient(fresh_cp.url, ca_path=fresh_cp.ca_path, account="DU9999999")
    try:
        with pytest.raises(ConfigurationError) as info:
            client.account(time.monotonic() + 10)
        assert "DU9999999" not in str(info.value) and "DU…99" in str(info.value)
    finally:
        client.close()
