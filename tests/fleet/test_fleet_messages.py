"""IB's message rate is split among the processes of a gateway that share a Redis."""

from __future__ import annotations

import threading

from hypothesis import given
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


def test_two_clients_share_the_message_rate(sim, redis_server, new_client_id):
    settings = {"port": sim.port, "sources": "ib", "redis_url": redis_server.url}
    with Client(client_id=new_client_id(), **settings) as first:
        first.price("EURUSD")
        assert _max_requests(first) == 45
        with Client(client_id=new_client_id(), **settings) as second:
            second.price("EURUSD")
            assert _max_requests(second) == 22
            # The first learns of the second at its next beat (every second).
            changed = threading.Event()
            for _ in range(50):
                if _max_requests(first) == 22:
                    changed.set()
                    break
                changed.wait(0.1)
            assert changed.is_set()
