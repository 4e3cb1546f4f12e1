"""Falling back to (a stubbed) yfinance when the gateway is refused or blackholed.

yfinance is stubbed at its boundary (``yfinance.Ticker``): there is no network.
Everything else — settings, client, registry, gateway, sockets — is real.
"""

from __future__ import annotations

import socket
import time

import pandas as pd
import pytest

import ib_nice_funcs as n
from ib_nice_funcs import Client
from ib_nice_funcs.frames import OHLCV_COLUMNS


class FakeTicker:
    """Stands in for ``yfinance.Ticker``: a fixed last price and hourly history."""

    def __init__(self, ticker: str) -> None:
        self.ticker = ticker
        self.fast_info = {"last_price": 123.45}

    def history(self, start=None, end=None, interval="1d", period=None,
                **_: object) -> pd.DataFrame:
        end_ts = pd.Timestamp(end or pd.Timestamp.now(tz="UTC"))
        end_ts = end_ts.tz_localize("UTC") if end_ts.tzinfo is None else end_ts
        freq = pd.tseries.frequencies.to_offset(
            {"60m": "1h", "1d": "1D", "5m": "5min", "15m": "15min"}.get(interval, "1h"))
        index = pd.date_range(end=end_ts.floor(freq) - freq, periods=48, freq=freq)
        index = index.tz_convert("America/New_York")
        base = pd.Series(range(48), index=index, dtype=float) + 100
        return pd.DataFrame(
            {"Open": base, "High": base + 1, "Low": base - 1, "Close": base + 0.5,
             "Volume": 1000.0},
            index=index,
        )


@pytest.fixture
def yahoo(mocker):
    import yfinance

    return mocker.patch.object(yfinance, "Ticker", side_effect=FakeTicker)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_gateway_falls_back_to_yfinance(yahoo, warnings_log, new_client_id):
    port = _free_port()  # nothing listens here: connection refused
    with Client(port=port, client_id=new_client_id(), timeout=10) as client:
        t0 = time.monotonic()
        assert client.price("AAPL") == pytest.approx(123.45)
        frame = client.ohlcv("AAPL", "1h", 1)
        assert time.monotonic() - t0 < 10
    assert frame.attrs["source"] == "yfinance"
    assert list(frame.columns) == list(OHLCV_COLUMNS)
    assert yahoo.call_count >= 2


def test_blackholed_gateway_falls_back_within_the_timeout(fresh_sim, yahoo, new_client_id):
    fresh_sim.set_blackhole(True)
    with Client(port=fresh_sim.port, client_id=new_client_id(), timeout=8,
                connect_timeout=1.5) as client:
        t0 = time.monotonic()
        assert client.price("MSFT") == pytest.approx(123.45)
        first = time.monotonic() - t0
        t0 = time.monotonic()
        client.clear_caches()
        assert client.price("MSFT") == pytest.approx(123.45)
        second = time.monotonic() - t0
    assert first < 8
    assert second < 1.0  # in backoff: the dead gateway is not waited for again


def test_module_level_fallback_names_the_cause(yahoo, warnings_log, new_client_id):
    n.configure(port=_free_port(), client_id=new_client_id())
    frame = n.get_ohlcv_data("EURUSD", "1H", 1)
    assert frame.attrs["source"] == "yfinance" and not frame.empty


def test_everything_down_gives_none_and_one_warning(mocker, warnings_log, new_client_id):
    import yfinance

    mocker.patch.object(yfinance, "Ticker", side_effect=ConnectionError("network is unreachable"))
    n.configure(port=_free_port(), client_id=new_client_id(), timeout=5)
    assert n.token_price("AAPL") is None
    frame = n.get_data("AAPL", 1, "1h")
    assert frame.empty and "Datetime (UTC)" in frame.columns
    messages = [r.getMessage() for r in warnings_log.records if r.name.startswith("ib_nice_funcs")]
    assert len([m for m in messages if "token_price(AAPL)" in m]) == 1
    assert any("connection refused" in m.lower() or "refused" in m for m in messages)


def test_source_ib_only_does_not_fall_back(yahoo, new_client_id):
    with Client(port=_free_port(), client_id=new_client_id(), timeout=5) as client:
        with pytest.raises(n.ConnectionFailedError):
            client.price("AAPL", source="ib")
    assert yahoo.call_count == 0
