"""Other people's clients against the simulators, each in a session of its own."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from ib_nice_funcs.sim import MarketClock, PaperMarket, run_simulator
from ib_nice_funcs.sim.runner import SimulatorHandle

#: Wednesday 2024-03-06 10:00:30 America/New_York: stocks, FX and crypto all trade.
OPEN_T = dt.datetime(2024, 3, 6, 15, 0, 30, tzinfo=dt.timezone.utc).timestamp()


@pytest.fixture
def clock() -> MarketClock:
    """The market clock, running from an open-market Wednesday (never today's date)."""
    return MarketClock(OPEN_T)


@pytest.fixture
def sims(clock: MarketClock) -> Iterator[SimulatorHandle]:
    """A TWS simulator and a Client Portal simulator on one market and one account."""
    market = PaperMarket(seed=3, clock=clock)
    with run_simulator(market=market, tick_interval=0.05, portal=True,
                       portal_kwargs={"penalty_s": 5.0}) as handle:
        yield handle
