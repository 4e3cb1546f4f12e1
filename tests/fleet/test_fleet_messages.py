"""IB's message rate is split among the processes of a gateway that share a Redis."""

from __future__ import annotations

import threading

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ib_nice_funcs import Client
from ib_nice_funcs.fleet.messages import share_of


@given(st.integers(1, 500))
def test_shares_never_exceed_the_budget_and_never_reach_zero(members):
    assert share_of(members) >= 1
    if members <= 45:
        assert share_of(members) * members <= 45


def _max_requests(client: Client) -> int:
    async def read() -> int:
        return (await client.gateway.ib_async()).client.MaxRequests

    return client.gateway.call(read, 5, "MaxRequests")


def _settles(read, want: int) -> bool:
    """Poll ``read()`` (members beat every second) until it gives ``want``; bounded."""
    settled = threading.Event()
    for _ in range(100):
        if read() == want:
            settled.set()
            break
        settled.wait(0.1)
    return settled.is_set()


def test_two_clients_share_the_message_rate(sim, redis_server, new_client_id):
    settings = {"port": sim.port, "sources": "ib", "redis_url": redis_server.url}
    with Client(client_id=new_client_id(), **settings) as first:
        first.price("EURUSD")
        assert _max_requests(first) == 45
        with Client(client_id=new_client_id(), **settings) as second:
            second.price("EURUSD")
            # Once neither has anything queued, they split evenly (each learns
            # of the other at its next beat, every second).
            assert _settles(lambda: _max_requests(second), 22)
            assert _settles(lambda: _max_requests(first), 22)



@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # flushed per input
@given(st.lists(st.tuples(st.integers(0, 29), st.integers(0, 200)), min_size=1, max_size=120))
def test_grants_never_add_up_to_more_than_the_budget(redis_server, beats):
    """Members beat in any order with any demand: once each has beaten since the last one
    joined, what they hold together is within 45 (a newcomer's first 1 a second may
    overshoot until the others' next beat, at most 1 per member)."""
    import redis

    from ib_nice_funcs.fleet import messages

    client = redis.Redis(port=redis_server.port)
    client.flushdb()
    beat = client.register_script(messages._BEAT)
    keys = ["t:members", "t:demand", "t:grants"]
    held: dict[str, int] = {}
    last: dict[str, int] = {}
    for member, demand in beats:
        owner = f"m{member}"
        held[owner] = int(beat(keys=keys, args=[owner, 60, demand, messages.BUDGET_PER_S]))
        last[owner] = demand
        assert held[owner] >= 1
        assert sum(held.values()) <= messages.BUDGET_PER_S + len(held), held
    for owner, demand in last.items():  # one more beat each
        held[owner] = int(beat(keys=keys, args=[owner, 60, demand, messages.BUDGET_PER_S]))
    assert sum(held.values()) <= messages.BUDGET_PER_S, held


def test_a_member_with_a_queue_gets_the_rate_the_idle_ones_leave(redis_server):
    import redis

    from ib_nice_funcs.fleet import messages

    client = redis.Redis(port=redis_server.port)
    beat = client.register_script(messages._BEAT)
    keys = ["t:members", "t:demand", "t:grants"]

    def one(owner: str, demand: int) -> int:
        return int(beat(keys=keys, args=[owner, 60, demand, messages.BUDGET_PER_S]))

    for k in range(20):
        one(f"m{k}", 0)  # joining one by one: the first ones hold more for a beat
    for k in range(20):
        assert one(f"m{k}", 0) == 2  # twenty idle members: 45 // 20 each
    one("m0", 50)  # m0 has fifty requests queued: what is free now
    for k in range(1, 20):
        assert one(f"m{k}", 0) == 1  # the idle ones give theirs back ...
    assert one("m0", 50) == 45 - 19  # ... and m0 gets the rest at its next beat
