"""Shared fixtures: the paper simulator on loopback and clients pointed at it."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

import pytest

from ib_nice_funcs import config as ib_config

_client_ids = itertools.count(200)

#: A regular-hours moment (Wednesday 2026-11-18 11:00 New York): stocks, FX and
#: crypto all trade, and the last days hold sessions of each.
OPEN_MARKET_AT = "2026-11-18 11:00 America/New_York"


def open_market(seed: int) -> Any:
    """A PaperMarket whose clock starts at :data:`OPEN_MARKET_AT` and runs with real time.

    The simulators of the shared fixtures use it, and the clients made on them
    take the same clock (``clock=handle.market.clock``), so what the tests see
    does not depend on today's date or the time of day (a market on the wall
    clock is closed at night and at weekends: no ticks, stock orders wait).
    """
    from ib_nice_funcs.sim import MarketClock, PaperMarket

    return PaperMarket(seed=seed, clock=MarketClock.at(OPEN_MARKET_AT))


def market_clock(handle: Any) -> Callable[[], float]:
    """The market clock of a simulator handle, for ``Client(clock=...)``."""
    return handle.market.clock


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

    with run_simulator(market=open_market(seed=1)) as handle:
        yield handle


@pytest.fixture
def fresh_sim():
    """A simulator of the test's own, for fault knobs that would disturb others."""
    from ib_nice_funcs.sim import run_simulator

    with run_simulator(market=open_market(seed=2)) as handle:
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

    with Client(host="127.0.0.1", port=sim.port, client_id=next_client_id(), sources="ib",
                timeout=15, clock=market_clock(sim)) as c:
        yield c


@pytest.fixture
def use_sim(sim):
    """Point the module-level nice_funcs functions at the simulator."""
    from ib_nice_funcs import nice_funcs

    nice_funcs.configure(host="127.0.0.1", port=sim.port, client_id=next_client_id(),
                         sources="ib", timeout=15, clock=market_clock(sim))
    yield sim


@pytest.fixture
def sim_clock(sim):
    """Module-level settings (and so the CLI's) on the market clock of ``sim``.

    For tests that reach the simulator through ``configure()``-made clients,
    not the ``client`` fixture: ``pytestmark = pytest.mark.usefixtures("sim_clock")``.
    """
    ib_config.configure(clock=market_clock(sim))
    return sim


@pytest.fixture
def warnings_log(caplog):
    caplog.set_level(logging.WARNING, logger="ib_nice_funcs")
    return caplog


def _browser_paths() -> tuple[str, str] | None:
    import shutil

    browser = next((p for p in map(shutil.which, ("chromium", "chromium-browser",
                                                  "google-chrome")) if p), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.fixture
def browser():
    """A headless Chromium (selenium); skips with the reason where there is none."""
    paths = _browser_paths()
    if paths is None:
        pytest.skip("no Chromium + chromedriver on PATH (Debian: apt-get install chromium "
                    "chromium-driver); the dashboard's browser tests need them")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1400,1700", "--disable-gpu"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(paths[1]), options=options)
    try:
        yield driver
    finally:
        driver.quit()
