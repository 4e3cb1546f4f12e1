"""Fixtures for the Client Portal tests: the project's CP simulator over real HTTPS loopback."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from ib_nice_funcs.config import Settings
from ib_nice_funcs.portal.http import Guards, gateway_guards, set_gateway_guards
from ib_nice_funcs.portal.throttle import EndpointLimit, PenaltyBox, Throttle
from ib_nice_funcs.sources.portal import PortalSource

_seeds = itertools.count(40)

#: The simulators' market clock starts here (Wednesday 11:00 New York, regular
#: hours) and runs with real time, so the tests see an open market on any date.
OPEN_MARKET_AT = "2026-11-18 11:00 America/New_York"


#: Most tests run gateway and client FAST times faster than IB's limits (same rules,
#: shorter waits); the burst and bench run at the real ones.
FAST = 5.0


def speed_up(handle: Any, factor: float = FAST) -> None:
    """Scale the simulator's rate limits and this process's throttle for it by ``factor``."""
    handle.set_rate_limits({
        "global": (10 * factor, 1.0), "/iserver/marketdata/snapshot": (10 * factor, 1.0),
        "/tickle": (factor, 1.0), "/iserver/account/orders": (factor, 5.0),
        "/portfolio/accounts": (factor, 5.0)})
    fast_client(handle.url, factor)


def fast_client(url: str, factor: float = FAST) -> None:
    """This process's throttle for the gateway at ``url``, ``factor`` times IB's limits."""
    limits = {"snapshot": EndpointLimit(10 * factor, 1.0), "history": EndpointLimit(concurrent=5),
              "tickle": EndpointLimit(factor, 1.0), "live_orders": EndpointLimit(factor, 5.0),
              "portfolio_accounts": EndpointLimit(factor, 5.0)}
    set_gateway_guards(url, Guards(Throttle(10 * factor, limits), PenaltyBox()))


@contextlib.contextmanager
def portal_sim(fast: bool = True, **kwargs: Any) -> Iterator[Any]:
    """A Client Portal simulator (HTTPS, real 600 s penalty box)."""
    from ib_nice_funcs.sim import run_portal_simulator

    kwargs.setdefault("seed", next(_seeds))
    if "tws" not in kwargs:
        # An open market whatever the date: the clients get its clock (settings_for).
        from ib_nice_funcs.sim import MarketClock, PaperMarket

        kwargs.setdefault("market", PaperMarket(seed=kwargs["seed"],
                                                clock=MarketClock.at(OPEN_MARKET_AT)))
    with run_portal_simulator(**kwargs) as handle:
        if fast:
            speed_up(handle)
        yield handle


@pytest.fixture(scope="module")
def cp():
    """One Client Portal simulator per test module."""
    with portal_sim(seed=7) as handle:
        yield handle


@pytest.fixture
def fresh_cp():
    """A simulator of the test's own, for knobs and counters other tests must not see."""
    with portal_sim() as handle:
        yield handle


def market_now(handle: Any) -> datetime:
    """The simulator's market time now (the end of a test's ``days_back_range``)."""
    return datetime.fromtimestamp(handle.market.clock(), timezone.utc)


def settings_for(handle: Any, **overrides: Any) -> Settings:
    """Settings pointing at a simulator (verification on, with its CA)."""
    values = {"portal_url": handle.url, "portal_ca": handle.ca_path, "timeout": 10.0,
              "sources": "portal", "clock": handle.market.clock}
    values.update(overrides)
    return Settings().replace(**values)


@contextlib.contextmanager
def open_source(handle: Any, **overrides: Any) -> Iterator[PortalSource]:
    """A PortalSource on ``handle``, closed afterwards (its keep-alive thread ends)."""
    source = PortalSource(settings_for(handle, **overrides))
    try:
        yield source
    finally:
        source.close()


@pytest.fixture
def source(cp):
    with open_source(cp) as src:
        yield src


@pytest.fixture
def fresh_source(fresh_cp):
    with open_source(fresh_cp) as src:
        yield src


def no_429(handle: Any) -> None:
    """Fail loudly if a test got the client into the gateway's penalty box."""
    assert handle.count_429 == 0, "the client broke a Client Portal rate limit"
    assert not gateway_guards(handle.url).penalty.active
