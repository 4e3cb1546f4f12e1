"""Shared pacing: agent processes sharing a Redis spend one historical budget.

IB refuses (error 162) the 6th historical request for one contract within
2 s, counted at the gateway over every client. Eight processes asking for
eight different ranges of one symbol at once would break that rule if each
paced itself alone.
"""

from __future__ import annotations


def test_eight_processes_polling_one_symbol_get_no_pacing_violation(
        fresh_sim, agent_group, redis_server):
    group = agent_group(fresh_sim, 8, redis_url=redis_server.url, timeout=30)
    for agent in group:
        agent.call("token_price", "MSFT")  # imports and connection warm
    for k, agent in enumerate(group):
        agent.send({"op": "call", "fn": "get_ohlcv_data",
                    "args": ["BTC-USD", "1h"], "kwargs": {"days_back": k + 1}})
    frames = [agent.answer(90) for agent in group]
    assert all(frame["rows"] > 0 for frame in frames), (frames, [
        line for agent in group for line in agent.stderr if "WARNING" in line])
    violations = [line for agent in group for line in agent.stderr if "pacing" in line.lower()
                  and "WARNING" in line]
    assert not violations, violations
