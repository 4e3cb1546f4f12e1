"""days_back bounds, booked pacing slots given back, shared work ending with its callers."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ib_nice_funcs._tasks import SharedTask
from ib_nice_funcs.timeframes import (
    MAX_REQUESTS_PER_PLAN,
    VALID_TIMEFRAMES,
    PacingBudget,
    check_days_back,
    parse_timeframe,
    plan_chunks,
)

NOW = datetime(2026, 3, 2, 15, 30, tzinfo=timezone.utc)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# -- days_back bounds -----------------------------------------------------------


def test_bounds_per_bar_size():
    assert parse_timeframe("1m").max_days_back == 420
    assert parse_timeframe("5m").max_days_back == 420
    assert parse_timeframe("1h").max_days_back == 1800
    assert parse_timeframe("1d").max_days_back == 21900


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(VALID_TIMEFRAMES), st.floats(min_value=1e-3, max_value=1.0))
def test_any_days_back_up_to_the_bound_plans_at_most_sixty_requests(name, share):
    tf = parse_timeframe(name)
    days = tf.max_days_back * share
    assert check_days_back(tf, days) == days
    chunks = plan_chunks(tf, NOW - timedelta(days=days), NOW)
    assert 1 <= len(chunks) <= MAX_REQUESTS_PER_PLAN


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(VALID_TIMEFRAMES), st.floats(min_value=1.0001, max_value=1e9))
def test_days_back_above_the_bound_is_a_value_error_naming_it(name, factor):
    tf = parse_timeframe(name)
    with pytest.raises(ValueError, match=f"maximum of {tf.max_days_back:g} days for {tf.name}"):
        check_days_back(tf, tf.max_days_back * factor)


def test_the_message_points_to_a_timeframe_that_reaches_further():
    with pytest.raises(ValueError, match="'30m'"):
        check_days_back("1m", 700_000 / 700)  # 1,000 days of 1m bars
    with pytest.raises(ValueError, match="700000"):
        check_days_back("1m", 700_000)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True])
def test_days_back_must_be_positive_and_finite(bad):
    with pytest.raises(ValueError):
        check_days_back("1h", bad)


# -- booked slots given back -------------------------------------------------------


def test_a_released_booking_frees_its_slot():
    clock = FakeClock()
    budget = PacingBudget(clock=clock, margin_s=0.0)
    bookings = [budget.book(("k", i), "c") for i in range(5)]
    sixth = budget.book(("k", 5), "c")
    assert sixth.delay == pytest.approx(2.0)
    budget.release(sixth)
    assert len(budget) == 5
    budget.release(bookings[-1])
    assert budget.delay_for(("k", 9), "c") == 0.0
    budget.release(bookings[-1])  # twice: no error
    assert len(budget) == 4


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 30), st.floats(min_value=0.1, max_value=30))
def test_callers_that_keep_giving_up_never_push_the_schedule_out(plan, polls, every):
    """An agent polling a long plan and timing out each time: the slots it did
    not use come back, so the schedule is what the requests actually sent make it."""
    clock = FakeClock()
    budget = PacingBudget(clock=clock, margin_s=0.0)
    only_sent = PacingBudget(clock=clock, margin_s=0.0)
    for _ in range(polls):
        bookings = [budget.book(("k", i), "c") for i in range(plan)]
        for b in bookings:
            if b.delay > 0:  # not yet sent when the caller timed out
                budget.release(b)
            else:
                only_sent.record(b.key, b.contract_key)
        clock.t += every
    requests = [(("k", i), "c") for i in range(plan)]
    assert budget.projected_delay(requests) == only_sent.projected_delay(requests)
    assert len(budget) == len(only_sent)  # (both pruned by projected_delay)


def test_a_waiter_woken_late_is_moved_not_sent_into_the_next_burst():
    clock = FakeClock()
    budget = PacingBudget(clock=clock, margin_s=0.0)
    bookings = [budget.book(("k", i), "c") for i in range(15)]  # bursts at +0, +2, +4
    assert [b.delay for b in bookings[::5]] == [0.0, 2.0, 4.0]
    late = bookings[5]  # first of the second burst
    on_time = budget.on_time(bookings[6])
    clock.t += 2.0
    assert budget.on_time(bookings[6]).delay == 0.0 and on_time.delay == 0.0
    clock.t += 1.5  # woke 1.5 s late: sent now, it would be 6 in 2 s with the third burst
    moved = budget.on_time(late)
    assert moved.delay == pytest.approx(2.5)  # after the third burst's window
    assert len(budget) == 15
    assert budget.on_time(moved).delay == 0.0 or clock.t < moved.at


def test_projected_delay_books_nothing():
    clock = FakeClock()
    budget = PacingBudget(clock=clock, margin_s=0.0)
    requests = [(("k", i), "c") for i in range(53)]  # a year of 5m bars
    wait = budget.projected_delay(requests)
    assert wait == pytest.approx(20.0)  # ten more bursts of 5 after the first, 2 s apart
    assert len(budget) == 0
    assert budget.projected_delay([]) == 0.0
    for _ in range(60):
        budget.book(("other", _), ("c", _ // 5))
    assert budget.projected_delay(requests[:1]) == pytest.approx(600.0)


# -- shared work ---------------------------------------------------------------------


def test_shared_task_ends_when_its_last_waiter_leaves():
    async def main() -> tuple[bool, bool]:
        started = asyncio.Event()

        async def work() -> int:
            started.set()
            await asyncio.Event().wait()  # never ends by itself
            return 1

        shared = SharedTask(work())
        a = asyncio.ensure_future(shared.wait())
        b = asyncio.ensure_future(shared.wait())
        await started.wait()
        a.cancel()
        await asyncio.gather(a, return_exceptions=True)
        still_running = not shared.done()
        b.cancel()
        await asyncio.gather(b, return_exceptions=True)
        await asyncio.gather(shared.task, return_exceptions=True)
        return still_running, shared.task.cancelled()

    still_running, cancelled = asyncio.run(main())
    assert still_running and cancelled


def test_shared_task_failure_with_nobody_waiting_is_not_logged(caplog):
    import gc

    async def main() -> None:
        async def fail() -> None:
            raise RuntimeError("boom")

        shared = SharedTask(fail())
        await asyncio.sleep(0)
        await asyncio.gather(shared.task, return_exceptions=True)

    caplog.set_level("ERROR", logger="asyncio")
    asyncio.run(main())
    gc.collect()
    assert "never retrieved" not in caplog.text
