"""Shared fixtures: the paper simulator on loopback and clients pointed at it."""

from __future__ import annotations

import itertools
import logging

import pytest

from ib_nice_funcs import config as ib_config

_client_ids = itertools.count(200)


@pytest.fixture(scope="session")
def session_journal(tmp_path_factory):
    """The trade journal every test writes to unless it names its own (never the user's)."""
    return tmp_path_factory.mktemp("journal") / "journal.sqlite3"


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch, session_journal, tmp_path):
    """Each test starts from defaults: no IB_* variables, no configure() leftovers.

    The journal goes to one file of the test session, so trading tests also
    run the journal's code, and nothing is written under the user's home.
    Each test has a per-host fleet state (halt latch, order-id claims) of its own.
    """
    import os

    for key in list(os.environ):
        if key.startswith(("IB_", "IB_NICE_FUNCS_")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("IB_NICE_FUNCS_JOURNAL", str(session_journal))
    monkeypatch.setenv("IB_NICE_FUNCS_FLEET_DIR", str(tmp_path / "fleet-state"))
    ib_config.reset_settings()
    yield
    from ib_nice_funcs import nice_funcs

    nice_funcs.close()
    ib_config.reset_settings()


@pytest.fixture(scope="module")
def sim():
    """One paper TWS simulator per test module (seeded, pacing enforced).

    Per module, not per session: IB's pacing (60 historical requests in ten
    minutes) is budgeted per gateway address, and the whole suite sends more
    than that.
    """
    from ib_nice_funcs.sim import run_simulator

    with run_simulator(seed=1) as handle:
        yield handle


@pytest.fixture
def fresh_sim():
    """A simulator of the test's own, for fault knobs that would disturb others."""
    from ib_nice_funcs.sim import run_simulator

    with run_simulator(seed=2) as handle:
        yield handle


def next_client_id() -> int:
    return next(_client_ids)


@pytest.fixture
def new_client_id():
    """A function giving a client id no other test in this run uses."""
    return next_client_id


@pytest.fixture
def client(sim):
    from ib_nice_funcs import Client

    with Client(host="127.0.0.1", port=sim.port, client_id=next_client_id(), sources="ib", timeout=15) as c:
        yield c


@pytest.fixture
def use_sim(sim):
    """Point the module-level nice_funcs functions at the simulator."""
    from ib_nice_funcs import nice_funcs

    nice_funcs.configure(host="127.0.0.1", port=sim.port, client_id=next_client_id(), sources="ib", timeout=15)
    yield sim


@pytest.fixture
def warnings_log(caplog):
    caplog.set_level(logging.WARNING, logger="ib_nice_funcs")
    return caplog
