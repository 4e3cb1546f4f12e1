"""Shared fixtures for the simulator tests: a fixed market clock and a running simulator."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator

import pytest

from ib_nice_funcs.sim import PaperMarket, run_simulator
from ib_nice_funcs.sim.runner import SimulatorHandle

#: Wednesday 2024-03-06 10:00:30 America/New_York: stocks, FX and crypto all trade.
OPEN_T = dt.datetime(2024, 3, 6, 15, 0, 30, tzinfo=dt.timezone.utc).timestamp()
#: Saturday 2024-03-09 12:00 UTC: only crypto trades.
WEEKEND_T = dt.datetime(2024, 3, 9, 12, 0, 0, tzinfo=dt.timezone.utc).timestamp()


class StepClock:
    """A settable clock for the market (tests move time by hand)."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def run(coro, timeout: float = 30.0):
    """Run a coroutine to completion on a fresh loop, bounded by ``timeout``."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def connect(port: int, client_id: int = 1, timeout: float = 5.0):
    """An ib_async IB connected to the simulator on ``port``."""
    from ib_async import IB

    ib = IB()
    await ib.connectAsync("127.0.0.1", port, clientId=client_id, timeout=timeout)
    return ib


@pytest.fixture
def clock() -> StepClock:
    return StepClock(OPEN_T)


@pytest.fixture
def market(clock: StepClock) -> PaperMarket:
    return PaperMarket(seed=1, clock=clock)


@pytest.fixture
def sim(market: PaperMarket) -> Iterator[SimulatorHandle]:
    with run_simulator(market=market, tick_interval=0.05) as handle:
        yield handle
