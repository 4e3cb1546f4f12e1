"""The dashboard driven in a real headless Chromium against the paper simulator.

Skips (with the reason) where no Chromium + chromedriver is installed (the
``browser`` fixture of tests/conftest.py); ``.ci/run`` installs Debian's
``chromium`` and ``chromium-driver``.
"""

from __future__ import annotations

import json
import os
import secrets
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the dashboard extra is not installed")
pytest.importorskip("uvicorn", reason="the dashboard extra is not installed")
pytest.importorskip("plotly", reason="the dashboard extra is not installed")

from ib_nice_funcs.dashboard.app import TOKEN_HEADER, create_app  # noqa: E402
from ib_nice_funcs.dashboard.server import DashboardServer, PortInUseError  # noqa: E402

#: Upper bound for anything the page should show; the page polls every second.
UI_TIMEOUT_S = 20

#: Where the screenshots go (default: the test's tmp dir); read at import, before the
#: suite's fixture clears IB_* variables.
SCREENSHOTS = os.environ.get("DASHBOARD_SCREENSHOTS")


@pytest.fixture
def board(tsim, make_client, tmp_path):
    """An agent ('alpha') and a dashboard on one simulator and one journal; the page's URL."""
    journal = tmp_path / "journal.sqlite3"
    agent = make_client(tsim, journal=str(journal), agent="alpha").trading
    watcher = make_client(tsim, journal=str(journal), agent="dashboard")
    token = secrets.token_urlsafe(18)
    with DashboardServer(create_app(watcher, token, journal), "127.0.0.1", 0) as server:
        yield {"agent": agent, "url": server.url(token), "token": token,
               "base": f"http://127.0.0.1:{server.port}", "sim": tsim}


def _get(url: str, token: str | None = None, method: str = "GET") -> tuple[int, bytes]:
    headers = {TOKEN_HEADER: token} if token else {}
    request = urllib.request.Request(url, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait(driver, condition, what: str):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # A row read while the page re-renders its table goes stale: look again.
    waiter = WebDriverWait(driver, UI_TIMEOUT_S, poll_frequency=0.1,
                           ignored_exceptions=(StaleElementReferenceException,))
    return waiter.until(condition, what)


def _row(driver, tbody: str, key: str):
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, f"#{tbody} tr[data-key='{key}']")
    return found[0] if found else False


def _shot(driver, name: str, tmp_path: Path) -> Path:
    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
    return path


def test_requests_without_the_token_get_403_and_change_nothing(board, book):
    board["agent"].market_buy("AAPL", 1000)
    base = board["base"]
    for path, method in (("/", "GET"), ("/api/state", "GET"), ("/plotly.min.js", "GET"),
                         ("/api/stop", "POST"), ("/api/resume", "POST")):
        assert _get(base + path, None, method)[0] == 403, path
        assert _get(base + path, "wrong-token", method)[0] == 403, path
    held = book(board["sim"])
    assert set(held) == {"AAPL"} and held["AAPL"] > 0  # the refused stop changed nothing
    status, body = _get(base + "/api/state", board["token"])
    state = json.loads(body)
    assert status == 200 and state["halt"]["halted"] is False
    assert [p["symbol"] for p in state["positions"]] == ["AAPL"]
    assert {b["name"] for b in state["risk"]} >= {"max_daily_loss_usd", "max_position_usd",
                                                   "max_exposure_usd"}
    alpha = next(a for a in state["journal"]["agents"] if a["agent"] == "alpha")
    assert alpha["alive"] is True and alpha["connected"] is True and alpha["fills"] >= 1
    # The agent's and the dashboard's heartbeats: lines counted across both processes' clients.
    assert state["sources"]["scope"] == "all agents" and state["sources"]["processes"] == 2


def test_page_shows_a_trade_updates_without_reload_and_stop_flattens(
        board, browser, book, tmp_path):
    from selenium.webdriver.common.by import By

    agent = board["agent"]
    agent.market_buy("AAPL", 1500)
    browser.get(board["url"])
    _wait(browser, lambda d: _row(d, "positions", "AAPL"), "AAPL in the positions table")
    assert _row(browser, "agents", "alpha")
    browser.execute_script("window.__sameDocument = 'yes';")

    bought = agent.market_buy("MSFT", 2000)
    _wait(browser, lambda d: _row(d, "positions", "MSFT"), "MSFT appears without a reload")
    fills = _wait(browser, lambda d: [text for text in (r.text for r in d.find_elements(
        By.CSS_SELECTOR, "#fills tr")) if "MSFT" in text] or False, "the MSFT fill row")
    assert f"{bought['avg_price']:,.4f}" in fills[0]
    assert browser.execute_script("return window.__sameDocument;") == "yes"
    bars = browser.find_elements(By.CSS_SELECTOR, "#risk .bar")
    assert len(bars) >= 3
    _shot(browser, "dashboard-trading", tmp_path)

    browser.find_element(By.ID, "stop-btn").click()
    confirm = browser.find_element(By.ID, "stop-confirm-btn")
    assert confirm.is_displayed()
    assert book(board["sim"]) != {}  # nothing happens before the confirmation
    confirm.click()
    _wait(browser, lambda d: "HALTED" in d.find_element(By.ID, "halt-state").text, "HALTED")
    _wait(browser, lambda d: "no positions" in d.find_element(By.ID, "positions").text,
          "the positions table empties")
    assert book(board["sim"]) == {}
    _wait(browser, lambda d: _row(d, "agents", "dashboard"), "the stop's orders, as 'dashboard'")
    _shot(browser, "dashboard-halted", tmp_path)
    resume = browser.find_element(By.ID, "resume-btn")
    assert resume.is_displayed()
    resume.click()
    _wait(browser, lambda d: d.find_element(By.ID, "halt-state").text == "trading", "resumed")


def test_chart_marks_the_journal_fills(sim_factory, make_client, tmp_path, browser):
    """Crypto trades around the clock, so the simulator's wall-clock bars exist now."""
    from selenium.webdriver.common.by import By

    from ib_nice_funcs.sim import run_simulator

    journal = tmp_path / "journal.sqlite3"
    with run_simulator(seed=5) as handle:
        agent = make_client(handle, journal=str(journal), agent="beta").trading
        watcher = make_client(handle, journal=str(journal))
        assert agent.market_buy("BTC-USD", 2000)["success"]
        token = secrets.token_urlsafe(18)
        with DashboardServer(create_app(watcher, token, journal), "127.0.0.1", 0) as server:
            browser.get(server.url(token))
            _wait(browser, lambda d: d.find_element(By.ID, "chart").get_attribute(
                "data-symbol") == "BTC-USD", "the BTC-USD chart")
            names = browser.execute_script(
                "return document.getElementById('chart').data.map(t => t.name);")
            assert "BTC-USD" in names and "volume" in names and "buy fills" in names
            _shot(browser, "dashboard-chart", tmp_path)


def test_a_taken_port_is_named(board):
    port = int(board["base"].rsplit(":", 1)[1])
    with pytest.raises(PortInUseError, match=f"port {port} on 127.0.0.1 is in use"):
        DashboardServer(lambda *a: None, "127.0.0.1", port)


def test_state_names_each_source_and_its_health(sim_factory, new_client_id, tmp_path):
    from ib_nice_funcs import Client
    from ib_nice_funcs.dashboard.state import HaltState, StateCollector

    handle = sim_factory(portal=True)
    with Client(host="127.0.0.1", port=handle.port, client_id=new_client_id(),
                sources="ib,portal", portal_url=handle.portal.url,
                portal_ca=handle.portal.ca_path, timeout=10, journal="off",
                clock=handle.market.clock) as client:
        state = StateCollector(client, None, HaltState()).state()
    sources = {s["name"]: s for s in state["sources"]["sources"]}
    assert sources["ib"]["up"] is True and sources["ib"]["delayed"] is False
    assert sources["portal"]["up"] is True
    assert state["sources"]["lines"]["limit"] == 100
    assert state["sources"]["pacing"]["limit"] == 60
    assert state["journal"]["error"] == "the journal is off"
    assert state["account"]["net_liquidation"] > 0


def test_state_with_the_gateway_down_shows_why_and_raises_nothing(tsim, make_client):
    from ib_nice_funcs.dashboard.state import HaltState, StateCollector

    tsim.set_refuse_new(True)  # TWS / IB Gateway is not running
    client = make_client(tsim, journal="off")
    state = StateCollector(client, None, HaltState(), timeout=3).state()
    assert "ConnectionFailedError" in state["account"]["error"]
    assert "error" in state["positions"] and "error" in state["orders"]
    ib = next(s for s in state["sources"]["sources"] if s["name"] == "ib")
    assert ib["up"] is False
