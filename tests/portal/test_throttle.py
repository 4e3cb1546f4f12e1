"""Token buckets, endpoint limits and the penalty box, on a fake clock (no I/O)."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ib_nice_funcs.errors import RequestTimeoutError, SourceUnavailableError
from ib_nice_funcs.portal.throttle import (
    DEFAULT_LIMITS,
    EndpointLimit,
    PenaltyBox,
    Throttle,
    TokenBucket,
    endpoint_key,
)
from ib_nice_funcs.sim._portal_limits import RateLimiter


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# --- the bucket --------------------------------------------------------------------------


def test_bucket_spaces_requests_evenly():
    bucket = TokenBucket(10.0)
    times = []
    for _ in range(5):
        at = bucket.earliest(0.0)
        bucket.commit(at)
        times.append(at)
    assert times == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_bucket_keeps_the_slots_before_a_future_booking_free():
    bucket = TokenBucket(10.0)
    bucket.commit(5.0)  # someone booked far ahead
    assert bucket.earliest(0.0) == 0.0
    assert bucket.earliest(4.95) == pytest.approx(5.1)
    bucket.commit(0.0)
    assert bucket.earliest(0.0) == pytest.approx(0.1)


def test_bucket_refills_while_idle_and_forgets_old_sends():
    bucket = TokenBucket(2.0)
    bucket.commit(bucket.earliest(0.0))
    assert bucket.earliest(0.1) == pytest.approx(0.5)
    assert bucket.earliest(10.0) == 10.0
    bucket.prune(10.0)
    assert bucket._booked == []


@pytest.mark.parametrize("rate", [0, -1, math.inf, math.nan])
def test_bucket_rejects_bad_rates(rate):
    with pytest.raises(ValueError):
        TokenBucket(rate)


# --- endpoint keys --------------------------------------------------------------------------


@pytest.mark.parametrize("path,key", [
    ("/iserver/marketdata/snapshot", "snapshot"),
    ("/iserver/marketdata/snapshot?conids=1", "snapshot"),
    ("/iserver/marketdata/history", "history"),
    ("/tickle", "tickle"),
    ("/iserver/account/orders", "live_orders"),
    ("/portfolio/accounts", "portfolio_accounts"),
    ("/iserver/account/DU1/orders", None),  # placing an order is not "live orders"
    ("/portfolio/DU1/positions/0", None),
    ("/iserver/accounts", None),
])
def test_endpoint_key(path, key):
    assert endpoint_key(path) == key


# --- the throttle ---------------------------------------------------------------------------


def test_callers_wait_for_a_slot_instead_of_being_refused():
    clock = FakeClock()
    throttle = Throttle(10.0, headroom=1.0, clock=clock)
    delays = [throttle.reserve(None, max_wait=5.0) for _ in range(4)]
    assert delays == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_a_slot_beyond_the_callers_timeout_raises_and_reserves_nothing():
    clock = FakeClock()
    throttle = Throttle(10.0, headroom=1.0, clock=clock)
    assert throttle.reserve("live_orders", max_wait=1.0) == 0.0
    with pytest.raises(RequestTimeoutError, match=r"1 per 5 s for live_orders"):
        throttle.reserve("live_orders", max_wait=1.0)
    # The refused call booked nothing: the global bucket's next slot is unchanged.
    assert throttle.reserve(None, max_wait=1.0) == pytest.approx(0.1)
    clock.t += 5.0
    assert throttle.reserve("live_orders", max_wait=0.0) == 0.0


def test_endpoint_and_global_limits_apply_together():
    clock = FakeClock(0.0)
    throttle = Throttle(10.0, headroom=1.0, clock=clock)
    assert throttle.reserve("tickle", max_wait=9) == 0.0
    assert throttle.reserve(None, max_wait=9) == pytest.approx(0.1)  # global spacing
    assert throttle.reserve("tickle", max_wait=9) == pytest.approx(1.0)  # tickle 1/s


def test_a_caller_held_back_by_its_endpoint_does_not_block_the_others():
    clock = FakeClock(0.0)
    throttle = Throttle(10.0, headroom=1.0, clock=clock)
    assert throttle.reserve("live_orders", max_wait=9) == 0.0
    assert throttle.reserve("live_orders", max_wait=9) == pytest.approx(5.0)
    # Everyone else keeps the global budget until then.
    assert [throttle.reserve("snapshot", max_wait=9) for _ in range(3)] == pytest.approx(
        [0.1, 0.2, 0.3])


def test_headroom_runs_slightly_under_the_limit():
    clock = FakeClock()
    throttle = Throttle(10.0, clock=clock)  # default headroom 0.95
    delays = [throttle.reserve(None, max_wait=60) for _ in range(101)]
    assert delays[-1] == pytest.approx(100 / 9.5)


def test_history_is_capped_at_five_in_flight():
    throttle = Throttle(10.0)
    slot = throttle.concurrency("history")
    assert slot is not None
    assert all(slot.acquire(timeout=0) for _ in range(5))
    assert not slot.acquire(timeout=0)
    slot.release()
    assert slot.acquire(timeout=0)
    assert throttle.concurrency("snapshot") is None
    assert DEFAULT_LIMITS["history"].concurrent == 5


_PATTERN = {"snapshot": "/iserver/marketdata/snapshot", "tickle": "/tickle",
            "live_orders": "/iserver/account/orders", "portfolio_accounts": "/portfolio/accounts",
            "history": "/history", None: "/x"}


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=0.4), min_size=1, max_size=120),
    keys=st.lists(st.sampled_from(list(_PATTERN)), min_size=1, max_size=120),
)
def test_granted_slots_never_break_the_gateways_limits(gaps, keys):
    """Whatever callers ask, when, the sends we schedule pass the simulator's own limiter."""
    clock = FakeClock(0.0)
    throttle = Throttle(10.0, clock=clock)
    oracle_clock = FakeClock(0.0)
    # The gateway's rules, with no slack and no burst credit beyond one token.
    oracle = RateLimiter({"global": (1, 0.1), "/iserver/marketdata/snapshot": (1, 0.1),
                          "/tickle": (1, 1.0), "/iserver/account/orders": (1, 5.0),
                          "/portfolio/accounts": (1, 5.0)}, penalty_s=600,
                         clock=oracle_clock, slack_s=0.0)
    sends = []
    for i, gap in enumerate(gaps):
        clock.t += gap
        key = keys[i % len(keys)]
        delay = throttle.reserve(key, max_wait=1e9)
        assert delay >= 0
        sends.append((clock.t + delay, key))
    assert len(sends) == len(gaps)
    for at, key in sorted(sends, key=lambda s: s[0]):
        oracle_clock.t = at
        assert oracle.check("127.0.0.1", _PATTERN[key]) is None, (at, key)


@settings(max_examples=40, deadline=None)
@given(rate=st.floats(min_value=0.5, max_value=50.0), n=st.integers(min_value=2, max_value=200))
def test_any_window_holds_at_most_rate_times_length_plus_one(rate, n):
    clock = FakeClock(0.0)
    throttle = Throttle(rate, limits={}, clock=clock)
    times = [throttle.reserve(None, max_wait=1e9) for _ in range(n)]
    # Requests k apart are at least k intervals apart.
    interval = 1.0 / (rate * throttle.headroom)
    for k in (1, max(1, int(rate))):
        for a, b in zip(times, times[k:], strict=False):
            assert b - a >= k * interval - 1e-9


def test_custom_limits():
    clock = FakeClock()
    throttle = Throttle(100.0, {"x": EndpointLimit(2, 1.0)}, headroom=1.0, clock=clock)
    assert throttle.reserve("x", max_wait=9) == 0
    assert throttle.reserve("x", max_wait=9) == pytest.approx(0.5)


def test_bad_headroom():
    with pytest.raises(ValueError):
        Throttle(10.0, headroom=0)


# --- the penalty box ----------------------------------------------------------------------


def test_penalty_box_fails_fast_until_the_penalty_is_over():
    clock = FakeClock(50.0)
    box = PenaltyBox(clock=clock, wall=lambda: 1_700_000_000.0)
    box.check("price of AAPL")  # nothing running
    box.enter(600, "the gateway answered HTTP 429 to GET /iserver/marketdata/snapshot")
    assert box.active and box.remaining() == pytest.approx(600)
    with pytest.raises(SourceUnavailableError) as info:
        box.check("price of AAPL")
    message = str(info.value)
    assert "price of AAPL" in message
    assert "HTTP 429" in message and "snapshot" in message  # why
    assert re.search(r"until \d\d:\d\d:\d\d UTC", message)  # until when
    assert "600 s left" in message
    clock.t += 599.0
    with pytest.raises(SourceUnavailableError):
        box.check("price of AAPL")
    clock.t += 1.0
    box.check("price of AAPL")  # over: used again by itself
    assert not box.active and box.entered == 1


def test_penalty_box_extends_and_clears():
    clock = FakeClock(0.0)
    box = PenaltyBox(clock=clock)
    box.enter(10, "a")
    clock.t = 5
    box.enter(2, "b")  # a shorter penalty never shortens the running one
    assert box.remaining() == pytest.approx(5)
    box.clear()
    assert not box.active
