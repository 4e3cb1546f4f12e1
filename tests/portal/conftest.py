"""Fixtures for the Client Portal tests: the project's CP simulator over real HTTPS loopback."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from ib_nice_funcs.config import Settings
from ib_nice_funcs.portal.http import gateway_guards
from ib_nice_funcs.sources.portal import PortalSource

_seeds = itertools.count(40)


@pytest.fixture(scope="module")
def cp():
    """One Client Portal simulator per test module (real limits, 600 s penalty)."""
    from ib_nice_funcs.sim import run_portal_simulator

    with run_portal_simulator(seed=7) as handle:
        yield handle


@pytest.fixture
def fresh_cp():
    """A simulator of the test's own, for knobs and counters other tests must not see."""
    from ib_nice_funcs.sim import run_portal_simulator

    with run_portal_simulator(seed=next(_seeds)) as handle:
        yield handle


def settings_for(handle: Any, **overrides: Any) -> Settings:
    """Settings pointing at a simulator (verification on, with its CA)."""
    values = {"portal_url": handle.url, "portal_ca": handle.ca_path, "timeout": 10.0,
              "sources": "portal"}
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
