"""Rate limits and the penalty box, and the fault knobs (blackhole, drop, latency, down)."""

from __future__ import annotations

import concurrent.futures
import time

import pytest
import requests

from ib_nice_funcs.sim import run_portal_simulator
from ib_nice_funcs.sim._portal_limits import RateLimiter

from .conftest import AAPL, Api, StepClock


@pytest.fixture
def mono() -> StepClock:
    return StepClock(1000.0)


@pytest.fixture
def limited(market, mono):
    """Rate limits on, with a hand-moved clock and a 30 s penalty from the first 429."""
    with run_portal_simulator(market=market, clock=mono, penalty_s=30.0,
                              penalty_after=1) as h:
        api = Api(h)
        yield h, api
        api.close()


def test_limiter_alone():
    clock = StepClock(0.0)
    lim = RateLimiter({"global": (10, 1.0), "/tickle": (1, 1.0)}, penalty_s=5, clock=clock,
                      slack_s=0.0, penalty_after=1)
    assert all(lim.check("a", "/x") is None for _ in range(10))
    assert "10 requests per 1 s" in lim.check("a", "/x")
    assert lim.check("b", "/x") is None  # per IP
    assert lim.check("a", "/x") == "penalty box"
    clock.t = 4.9
    assert lim.check("a", "/x") == "penalty box"
    clock.t = 5.0
    assert lim.check("a", "/x") is None  # out of the box, with a refilled bucket
    assert lim.check("a", "/tickle") is None
    assert "/tickle" in lim.check("a", "/tickle")


def test_global_limit_429_then_penalty_box_then_recovery(limited, mono):
    h, api = limited
    codes = [api.post("/iserver/auth/status").status_code for _ in range(10)]
    assert codes == [200] * 10
    over = api.post("/iserver/auth/status")
    assert over.status_code == 429 and h.count_429 == 1
    mono.advance(5.0)  # buckets are full again, but the IP is in the penalty box
    assert api.post("/iserver/auth/status").status_code == 429
    assert api.get("/portfolio/accounts").status_code == 429
    assert h.count_429 == 3 and h.penalized()
    mono.advance(25.1)
    assert api.post("/iserver/auth/status").status_code == 200
    assert h.request_counts()["POST /iserver/auth/status"] == 13


def test_endpoint_limits(limited, mono):
    h, api = limited
    assert api.post("/tickle").status_code == 200
    mono.advance(0.5)
    assert api.post("/tickle").status_code == 429  # 1 per second
    mono.advance(30.0)
    assert api.post("/tickle").status_code == 200
    mono.advance(1.0)
    assert api.post("/tickle").status_code == 200
    api.get("/iserver/accounts")
    assert api.get("/iserver/account/orders").status_code == 200
    mono.advance(4.0)
    assert api.get("/iserver/account/orders").status_code == 429  # 1 per 5 seconds
    mono.advance(30.0)
    assert api.get("/iserver/account/orders").status_code == 200
    mono.advance(5.0)
    assert api.get("/portfolio/accounts").status_code == 200
    assert api.get("/portfolio/accounts").status_code == 429
    mono.advance(30.0)
    for _ in range(10):  # snapshot: 10 per second
        assert api.get("/iserver/marketdata/snapshot", params={"conids": AAPL}).status_code == 200
        mono.advance(0.1)
    assert h.count_429 == 3


def test_a_client_at_the_limit_never_sees_429(limited, mono):
    h, api = limited
    for _ in range(50):  # exactly 10 per second, across endpoints
        assert api.post("/iserver/auth/status").status_code == 200
        mono.advance(0.1)
    assert h.count_429 == 0


def test_penalty_expires_in_real_time(market):
    with run_portal_simulator(market=market, penalty_s=0.3,
                              rate_limits={"global": (3, 1.0)}) as h:
        api = Api(h)
        codes = [api.post("/tickle").status_code for _ in range(5)]
        assert codes[:3] == [200] * 3 and 429 in codes
        deadline = time.monotonic() + 5.0
        while api.post("/iserver/auth/status").status_code == 429:
            assert time.monotonic() < deadline, "still in the penalty box"
            time.sleep(0.05)
        assert not h.penalized()
        h.set_enforce_rate_limits(False)
        assert all(api.post("/tickle").status_code == 200 for _ in range(20))
        api.close()


def test_history_concurrency_limit(market):
    with run_portal_simulator(market=market, penalty_s=0.0,
                              rate_limits={"global": (50, 1.0)}) as h:
        h.set_latency(0.4)
        h.call(lambda: h.sim.session.__setattr__("accounts_called", True))

        def one(_):
            api = Api(h)
            try:
                return api.get("/iserver/marketdata/history",
                               params={"conid": AAPL, "period": "1d", "bar": "1h"}).status_code
            finally:
                api.close()

        with concurrent.futures.ThreadPoolExecutor(7) as pool:
            codes = sorted(pool.map(one, range(7)))
        assert codes == [200] * 5 + [429] * 2


def test_blackhole_times_out_then_recovers(api, portal):
    portal.set_blackhole(True)
    t0 = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        api.post("/iserver/auth/status", timeout=0.3)
    assert time.monotonic() - t0 < 2.0
    portal.set_blackhole(False)
    assert api.post("/iserver/auth/status", timeout=5).status_code == 200
    assert portal.request_counts()["POST /iserver/auth/status"] == 2  # unanswered ones count


def test_latency(api, portal):
    portal.set_latency(0.3)
    t0 = time.monotonic()
    assert api.post("/tickle").status_code == 200
    assert time.monotonic() - t0 >= 0.3
    with pytest.raises(requests.exceptions.ReadTimeout):
        api.post("/tickle", timeout=0.1)
    portal.set_latency(0.0)
    assert api.post("/tickle").status_code == 200


def test_drop_and_down(api, portal):
    assert api.post("/tickle").status_code == 200
    portal.set_drop(True)
    with pytest.raises(requests.exceptions.ConnectionError):
        api.post("/tickle")
    portal.set_drop(False)
    assert api.post("/tickle").status_code == 200
    portal.set_down(True)
    with pytest.raises(requests.exceptions.ConnectionError):
        api.post("/tickle")
    portal.set_down(False)
    assert api.post("/tickle").status_code == 200


def test_one_429_is_not_a_penalty_box_but_repeated_violations_are():
    """IB boxes an IP that keeps violating; one slip only costs that request."""
    clock = StepClock(0.0)
    lim = RateLimiter({"global": (10, 1.0), "/tickle": (1, 1.0)}, penalty_s=600, clock=clock,
                      slack_s=0.0)
    assert lim.check("a", "/tickle") is None
    assert "/tickle" in lim.check("a", "/tickle")  # first strike: a 429, no box
    clock.t = 1.0
    assert lim.check("a", "/tickle") is None
    assert lim.check("a", "/tickle") is not None  # second strike
    clock.t = 2.0
    assert lim.check("a", "/tickle") is None
    assert lim.check("a", "/tickle") is not None  # third strike within a minute: the box
    clock.t = 10.0
    assert lim.check("a", "/x") == "penalty box"
    clock.t = 602.0
    assert lim.check("a", "/x") is None


def test_penalty_after_is_a_handle_knob(market, mono):
    with run_portal_simulator(market=market, rate_limits={"global": (2, 1.0)},
                              penalty_s=600.0, clock=mono) as h:
        api = Api(h)
        h.set_penalty_after(1)
        codes = [api.post("/tickle").status_code for _ in range(3)]
        assert codes == [200, 200, 429] and h.penalized()
        with pytest.raises(ValueError):
            h.set_penalty_after(0)
        api.close()
    with pytest.raises(ValueError):
        RateLimiter(penalty_after=0)
