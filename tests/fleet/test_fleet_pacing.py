"""Shared pacing: agent processes sharing a Redis spend one historical budget.

IB refuses (error 162) the 6th historical request for one contract within
2 s, counted at the gateway over every client. Eight processes asking for
eight different ranges of one symbol at once would break that rule if each
paced itself alone.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def test_eight_processes_polling_one_symbol_get_no_pacing_violation(
        fresh_sim, agent_group, redis_server, caplog):
    caplog.set_level("INFO", logger="ib_nice_funcs.sim")
    group = agent_group(fresh_sim, 8, redis_url=redis_server.url, timeout=30)
    for agent in group:
        agent.call("token_price", "MSFT")  # imports and connection warm
    for k, agent in enumerate(group):
        agent.send({"op": "call", "fn": "get_ohlcv_data",
                    "args": ["BTC-USD", "1h"], "kwargs": {"days_back": k + 1}})
    frames = [agent.answer(90) for agent in group]
    assert all(frame["rows"] > 0 for frame in frames), (frames, [
        r.getMessage() for r in caplog.records if "pacing" in r.getMessage()], [
        line for agent in group for line in agent.stderr if "WARNING" in line])
    violations = [line for agent in group for line in agent.logged()
                  if "pacing" in line.lower() and "WARNING" in line]
    assert not violations, violations


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 40), st.integers(0, 1)),
                min_size=1, max_size=40))
def test_slots_booked_by_several_processes_keep_every_rule(redis_server, bookings):
    """Whatever the order, the slots the shared budget hands out keep IB's three rules."""
    from ib_nice_funcs.fleet.pacing import SharedPacingBudget
    from ib_nice_funcs.timeframes import PacingBudget

    db = redis_server.client()
    db.flushall()
    budgets = [SharedPacingBudget(redis_server.url, "h", 1, PacingBudget()) for _ in range(3)]
    slots: list[tuple[float, int, int]] = []
    for who, request, contract in bookings:
        seconds, micros = db.time()
        delay = budgets[who].reserve(("request", request, contract), ("contract", contract))
        slots.append((seconds + micros / 1e6 + delay, request, contract))
    slack = 0.05  # the clock read before each booking, a few ms early
    for contract in (0, 1):
        times = sorted(t for t, _, c in slots if c == contract)
        for first, sixth in zip(times, times[5:], strict=False):
            assert sixth - first >= 2.0 - slack
        for request in range(41):
            same = sorted(t for t, r, c in slots if c == contract and r == request)
            for a, b in zip(same, same[1:], strict=False):
                assert b - a >= 15.0 - slack
    for budget in budgets:
        budget.link.close()
