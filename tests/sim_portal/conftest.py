"""Fixtures for the Client Portal simulator tests: a fixed market clock, a running
portal simulator and ``requests`` sessions that trust its CA (and nothing from the
environment)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterator

import pytest
import requests

from ib_nice_funcs.sim import PaperMarket, PortalHandle, run_portal_simulator

#: Wednesday 2024-03-06 10:00:30 America/New_York: stocks, FX and crypto all trade.
OPEN_T = dt.datetime(2024, 3, 6, 15, 0, 30, tzinfo=dt.timezone.utc).timestamp()
#: Saturday 2024-03-09 12:00 UTC: only crypto trades.
WEEKEND_T = dt.datetime(2024, 3, 9, 12, 0, 0, tzinfo=dt.timezone.utc).timestamp()
TIMEOUT = 5.0
AAPL, IBM, EURUSD, BTC = 265598, 8314, 12087792, 479624278


class StepClock:
    """A settable clock (tests move time by hand)."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def make_session(handle: PortalHandle) -> requests.Session:
    """A session that verifies with the simulator's CA and ignores *_CA_BUNDLE variables."""
    s = requests.Session()
    s.trust_env = False
    s.verify = handle.ca_path if handle.ca_path else True
    return s


class Api:
    """Thin helper: ``api.get("/iserver/accounts")`` -> Response (bounded by a timeout)."""

    def __init__(self, handle: PortalHandle) -> None:
        self.handle = handle
        self.url = handle.url
        self.acct = handle.account
        self.s = make_session(handle)

    def get(self, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", TIMEOUT)
        return self.s.get(self.url + path, **kw)

    def post(self, path: str, json=None, **kw) -> requests.Response:
        kw.setdefault("timeout", TIMEOUT)
        return self.s.post(self.url + path, json=json, **kw)

    def delete(self, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", TIMEOUT)
        return self.s.delete(self.url + path, **kw)

    def preflight(self) -> None:
        assert self.get("/iserver/accounts").status_code == 200
        assert self.get("/portfolio/accounts").status_code == 200

    def snapshot(self, conids, fields: str, polls: int = 5) -> list[dict]:
        """Poll until every conid carries field 31 (or 6509 only), at most ``polls`` times."""
        ids = ",".join(str(c) for c in conids)
        for _ in range(polls):
            rows = self.get("/iserver/marketdata/snapshot",
                            params={"conids": ids, "fields": fields}).json()
            if all("31" in r or r.get("6509") == "N" for r in rows):
                return rows
        raise AssertionError(f"no snapshot fields after {polls} polls: {rows}")

    def order(self, **fields) -> requests.Response:
        return self.post(f"/iserver/account/{self.acct}/orders", json={"orders": [fields]})

    def confirm_all(self, resp: requests.Response, limit: int = 5) -> tuple[list, list[str]]:
        """Answer every question with confirmed=true; (final body, message ids asked)."""
        asked: list[str] = []
        body = resp.json()
        for _ in range(limit):
            if not (isinstance(body, list) and body and "id" in body[0]
                    and "messageIds" in body[0]):
                return body, asked
            asked += body[0]["messageIds"]
            body = self.post(f"/iserver/reply/{body[0]['id']}", json={"confirmed": True}).json()
        raise AssertionError(f"more than {limit} questions: {asked}")

    def close(self) -> None:
        self.s.close()


@pytest.fixture
def clock() -> StepClock:
    return StepClock(OPEN_T)


@pytest.fixture
def market(clock: StepClock) -> PaperMarket:
    return PaperMarket(seed=1, clock=clock)


@pytest.fixture
def portal(market: PaperMarket) -> Iterator[PortalHandle]:
    """A portal simulator of the test's own; rate limits off (tests of limits switch them on)."""
    with run_portal_simulator(market=market, enforce_rate_limits=False) as handle:
        yield handle


@pytest.fixture
def api(portal: PortalHandle) -> Iterator[Api]:
    a = Api(portal)
    yield a
    a.close()


@pytest.fixture
def ready(api: Api) -> Api:
    """An Api whose session has done both pre-flights."""
    api.preflight()
    return api


def run(coro, timeout: float = 30.0):
    """Run a coroutine on a fresh loop, bounded by ``timeout``."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def wait_until(pred: Callable[[], object], timeout: float = 5.0, step: float = 0.02):
    """Poll ``pred`` until it is truthy or ``timeout`` passes (then AssertionError)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(step)
