"""One clock for the code and the simulator: a Saturday night behaves as one, whatever today is.

The simulator's market clock is pinned to a weekend night (stocks and FX
closed, crypto trading) and the client is given the same clock, as every
fixture does. Data windows (``days_back``) and the trading day then follow
that clock, not the machine's: this guards the plumbing that lets the suite
pass on any date and at any time of day.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from ib_nice_funcs.errors import NoDataError

#: Saturday 2026-11-21 23:00 New York: only crypto trades.
SATURDAY_NIGHT = "2026-11-21 23:00 America/New_York"


@pytest.fixture
def weekend_sim() -> Iterator[Any]:
    from ib_nice_funcs.sim import MarketClock, PaperMarket, run_simulator

    market = PaperMarket(seed=4, clock=MarketClock.at(SATURDAY_NIGHT))
    with run_simulator(market=market) as handle:
        yield handle


def test_bar_windows_end_at_the_shared_clock(weekend_sim, make_client):
    client = make_client(weekend_sim)
    now = datetime.fromtimestamp(weekend_sim.market.now(), timezone.utc)
    frame = client.ohlcv("BTC-USD", "1h", 1)
    newest = frame["timestamp"].iloc[-1].to_pydatetime()
    assert now - timedelta(hours=2) < newest <= now
    assert 23 <= len(frame) <= 25
    with pytest.raises(NoDataError):
        client.ohlcv("AAPL", "1h", 0.5)  # Saturday: no stock session in the window


def test_crypto_trades_on_a_weekend_night(weekend_sim, make_client):
    trader = make_client(weekend_sim).trading
    bought = trader.market_buy("BTC-USD", 500)
    assert bought["success"] is True and bought["status"] == "Filled"
    assert trader.get_position("BTC-USD")["quantity"] == pytest.approx(bought["filled_qty"])
