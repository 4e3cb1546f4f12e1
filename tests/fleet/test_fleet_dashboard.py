"""The dashboard shows the fleet's truth: the account-wide halt another agent process
latched (who, when, how to resume) and daily P&L from the account's shared day start.

A real agent process (``agent_proc.py``) trades and stops on the simulator;
the dashboard is a real server in this process, with a Client of its own
that shares only the fleet state (the test's fleet directory, or Redis).
The browser test drives headless Chromium and skips, saying why, without it.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the dashboard extra is not installed")
pytest.importorskip("uvicorn", reason="the dashboard extra is not installed")
pytest.importorskip("plotly", reason="the dashboard extra is not installed")

from ib_nice_funcs import Client  # noqa: E402
from ib_nice_funcs.dashboard.app import TOKEN_HEADER, create_app  # noqa: E402
from ib_nice_funcs.dashboard.server import DashboardServer  # noqa: E402

#: Upper bound for anything the page should show; the page polls every second.
UI_TIMEOUT_S = 20


@contextlib.contextmanager
def dashboard(handle: Any, client_id: int, **settings: Any) -> Iterator[dict[str, Any]]:
    """A dashboard server over its own Client on ``handle`` (journal off)."""
    with Client(host="127.0.0.1", port=handle.port, sources="ib", client_id=client_id,
                journal="off", timeout=10, clock=handle.sim.market.clock, **settings) as client:
        token = secrets.token_urlsafe(18)
        with DashboardServer(create_app(client, token, None), "127.0.0.1", 0) as server:
            yield {"url": server.url(token), "token": token,
                   "base": f"http://127.0.0.1:{server.port}"}


def _api(board: dict[str, Any], path: str, method: str = "GET") -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(board["base"] + path, method=method,
                                     headers={TOKEN_HEADER: board["token"]})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_another_process_halt_and_the_shared_baseline_in_the_api(
        tsim, agents, new_client_id, fleet_dir):
    agent = agents(tsim)
    start = agent.call("get_account_value")  # no position yet: the day's first look
    assert agent.call("market_buy", "AAPL", 3000)["success"]  # its risk check stores it
    assert agent.call("emergency_stop")["success"]  # latches the halt for the account
    with dashboard(tsim, new_client_id()) as board:
        status, state = _api(board, "/api/state")
        assert status == 200
        fleet, account, halt = state["fleet"], state["account"], state["halt"]
        assert fleet["error"] is None and fleet["where"] == f"files in {fleet_dir}"
        assert fleet["day_start"] == pytest.approx(start, abs=0.005)
        # The round trip cost something: this dashboard's own first look (its net
        # liquidation now) is not the account's day start, and P&L counts from the latter.
        net = account["net_liquidation"]
        assert net != pytest.approx(start, abs=0.005)
        assert account["day_start"] == fleet["day_start"]
        assert account["pnl_from"] == "the fleet's day start"
        assert account["daily_pnl"] == pytest.approx(net - start, abs=0.005)
        loss = next(b for b in state["risk"] if b["name"] == "max_daily_loss_usd")
        assert loss["used"] == pytest.approx(max(0.0, start - net), abs=0.005)

        assert halt["halted"] is True and halt["known"] is True and halt["scope"] == "account"
        assert halt["by_pid"] == agent.proc.pid and halt["by_alive"] is True
        assert halt["by_this_process"] is False and halt["reason"] == "emergency_stop()"
        assert "resume_trading()" in halt["message"] and "ib-nice-funcs resume" in halt["resume"]

        # The dashboard's Resume lifts it for the other process too.
        status, resumed = _api(board, "/api/resume", "POST")
        assert status == 200 and resumed["halt"]["halted"] is False, resumed
        assert "resume_trading()" in resumed["note"]
    assert agent.call("market_buy", "AAPL", 500)["success"]


def test_a_halt_latched_through_redis_on_another_host_reaches_the_dashboard(
        tsim, agents, new_client_id, redis_server, tmp_path):
    agent = agents(tsim, redis_url=redis_server.url, fleet_dir=str(tmp_path / "host-a"))
    assert agent.call("emergency_stop")["success"]
    with dashboard(tsim, new_client_id(), redis_url=redis_server.url,
                   fleet_dir=str(tmp_path / "host-b")) as board:
        _, state = _api(board, "/api/state")
        assert state["fleet"]["where"].startswith("Redis at ")
        assert state["halt"]["halted"] is True and state["halt"]["by_pid"] == agent.proc.pid
        # The dashboard's own risk check was the account's first look today.
        assert state["account"]["day_start"] == pytest.approx(
            state["account"]["net_liquidation"], abs=0.005)
        redis_server.stop()
        status, after = _api(board, "/api/resume", "POST")
        assert status == 502 and "FleetUnavailableError" in after["error"]
        assert after["halt"]["known"] is False and after["halt"]["fleet_error"]


def _wait(driver: Any, condition: Any, what: str) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    waiter = WebDriverWait(driver, UI_TIMEOUT_S, poll_frequency=0.1,
                           ignored_exceptions=(StaleElementReferenceException,))
    return waiter.until(condition, what)


def test_the_page_shows_who_halted_the_account_and_resumes_it(
        tsim, agents, new_client_id, browser, tmp_path):
    from selenium.webdriver.common.by import By

    agent = agents(tsim)
    assert agent.call("emergency_stop")["success"]
    pid = str(agent.proc.pid)
    with dashboard(tsim, new_client_id()) as board:
        browser.get(board["url"])
        badge = _wait(browser, lambda d: d.find_element(By.ID, "halt-state") if "HALTED" in
                      d.find_element(By.ID, "halt-state").text else False, "HALTED")
        assert badge.text == f"HALTED by pid {pid}"
        line = browser.find_element(By.ID, "fleet-halt").text
        assert f"pid {pid}, running" in line and "emergency_stop()" in line
        assert "resume_trading()" in line and "ib-nice-funcs resume" in line
        assert "day start" in browser.find_element(By.ID, "fleet").text
        browser.save_screenshot(str(tmp_path / "dashboard-fleet-halt.png"))
        browser.find_element(By.ID, "resume-btn").click()
        _wait(browser, lambda d: d.find_element(By.ID, "halt-state").text == "trading",
              "trading again")
        assert "not halted" in browser.find_element(By.ID, "fleet-halt").text
    assert agent.call("market_buy", "AAPL", 500)["success"]
