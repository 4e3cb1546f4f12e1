"""Rate limits against the simulator: a burst with zero 429s, and the penalty back-off."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from ib_nice_funcs import Client
from ib_nice_funcs.errors import SourceUnavailableError
from ib_nice_funcs.frames import empty_ohlcv
from ib_nice_funcs.portal.http import Guards, set_gateway_guards
from ib_nice_funcs.portal.throttle import PenaltyBox, Throttle
from ib_nice_funcs.sources import register_source, unregister_source
from ib_nice_funcs.symbols import parse_symbol

from .conftest import no_429, open_source, portal_sim

SYMBOLS = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "TSLA", "META", "SPY", "EURUSD", "BTC-USD"]
SNAPSHOT = "GET /iserver/marketdata/snapshot"


def test_a_burst_of_100_prices_at_the_real_limits_gets_no_429():
    """100 price calls through the registry at IB's 10 requests/s: no 429, near-ideal time."""
    with portal_sim(fast=False) as cp, Client(
        sources="portal", portal_url=cp.url, portal_ca=cp.ca_path, timeout=15, price_ttl=1e-6,
    ) as client:
        client.prices(SYMBOLS)  # warm up: session, pre-flight, conids, subscriptions
        before = cp.request_counts()
        started = time.monotonic()
        prices = [client.price(SYMBOLS[i % len(SYMBOLS)]) for i in range(100)]
        elapsed = time.monotonic() - started
        sent = sum((cp.request_counts() - before).values())
    assert all(p > 0 for p in prices)
    assert cp.count_429 == 0
    assert sent == 100  # one warm snapshot per call
    ideal = (sent - 1) / 10.0  # the first request goes at once
    assert elapsed <= 1.2 * ideal, f"{elapsed:.2f} s for {sent} requests (ideal {ideal:.2f} s)"


def test_concurrent_callers_share_the_budget_without_429s(cp):
    symbols = [parse_symbol(s) for s in SYMBOLS]
    with open_source(cp) as one, open_source(cp) as two:
        one.prices(symbols, timeout=10)
        import threading

        errors = []

        def hammer(src):
            try:
                for i in range(20):
                    src.prices([symbols[i % len(symbols)]], timeout=10)
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

        threads = [threading.Thread(target=hammer, args=(s,)) for s in (one, two, one, two)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert not errors
    no_429(cp)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Backup:
    """A data source that always answers, with values no simulator would give."""

    name = "backup"

    def prices(self, instruments, *, timeout):
        return {i.symbol: 12345.0 for i in instruments}

    def bars(self, instrument, timeframe, start, end, *, timeout):
        frame = empty_ohlcv()
        frame.loc[0] = [pd.Timestamp(end) - pd.Timedelta(hours=1), 1.0, 1.0, 1.0, 1.0, 0.0]
        return frame


@pytest.fixture
def backup():
    register_source("backup", Backup(), priority=50)
    yield
    unregister_source("backup")


def test_a_429_backs_off_fails_fast_falls_through_and_recovers(backup):
    clock = FakeClock()
    with portal_sim(fast=False, penalty_s=0.0) as cp:
        # A client that ignores the limits (no throttle) against a strict gateway.
        set_gateway_guards(cp.url, Guards(Throttle(1000.0, {}), PenaltyBox(clock=clock)))
        cp.set_rate_limits({"global": (3, 1.0)})
        with Client(sources="portal", portal_url=cp.url, portal_ca=cp.ca_path, timeout=10,
                    price_ttl=1e-6, portal_penalty_s=600, clock=cp.market.clock) as client:
            # Requests until the gateway answers 429: the price then comes from the backup.
            prices = [client.price("AAPL") for _ in range(6)]
            assert cp.count_429 == 1  # one 429, never retried
            assert prices[-1] == 12345.0
            source = client._source("portal")
            assert source.client.penalty.active
            with pytest.raises(SourceUnavailableError, match=r"until \d\d:\d\d:\d\d UTC.*429"):
                source.prices([parse_symbol("AAPL")], timeout=5)

            # During the penalty: fail fast, no request reaches the gateway, data falls through.
            sent = sum(cp.request_counts().values())
            started = time.monotonic()
            assert client.price("MSFT") == 12345.0
            frame = client.ohlcv("AAPL", "1h", 1)
            assert frame.attrs["source"] == "backup"
            assert time.monotonic() - started < 0.5
            assert sum(cp.request_counts().values()) == sent

            # After it the portal is used again by itself.
            cp.set_rate_limits({"global": (100, 1.0)})
            clock.t += 601
            client.clear_caches()
            assert client.price("AAPL") != 12345.0
            assert client.ohlcv("AAPL", "1h", 2).attrs["source"] == "portal"
            assert cp.count_429 == 1
