"""Shared quotes: one market-data line per symbol across processes, taken over when its
holder dies. Real agent processes, a real Redis, the simulator's market clock."""

from __future__ import annotations

import time

from .conftest import ask_all

SYMBOLS = ["BTC-USD", "ETH-USD", "EURUSD"]


def _until(check, timeout: float = 15.0, every: float = 0.1):
    """Poll ``check`` (an agent round trip) until it is truthy; bounded."""
    give_up = time.monotonic() + timeout
    while True:
        got = check()
        if got or time.monotonic() > give_up:
            return got
        time.sleep(every)


def test_three_processes_hold_one_line_per_symbol(fresh_sim, agent_group, redis_server):
    group = agent_group(fresh_sim, 3, redis_url=redis_server.url, price_ttl=0.001)
    for _ in range(2):  # asked twice: each symbol is streamed
        for prices in ask_all(group, "token_prices", SYMBOLS):
            assert all(prices[s] for s in SYMBOLS), prices
    assert fresh_sim.market_data_lines() == len(SYMBOLS)
    # A warm price in any process is the shared quote: nothing more reaches IB.
    before = fresh_sim.request_counts()
    for agent in group:
        for _ in range(5):
            assert agent.call("token_price", "BTC-USD") > 0
    assert fresh_sim.request_counts() == before


def test_killing_the_line_holder_loses_the_stream_for_at_most_5_s(
        fresh_sim, agent_group, redis_server):
    # price_ttl=0: the second ask may come within a millisecond of the first answer.
    holder, follower = agent_group(fresh_sim, 2, redis_url=redis_server.url, price_ttl=0)
    for _ in range(2):
        assert holder.call("token_price", "BTC-USD") > 0
    assert fresh_sim.market_data_lines() == 1
    follower.send({"op": "subscribe", "symbols": ["BTC-USD"]})
    follower.answer()
    assert _until(lambda: follower.call_op("last_tick")), "no shared ticks reached the follower"
    assert fresh_sim.market_data_lines() == 1  # the follower opened no line of its own
    holder.kill()
    killed = time.time()
    resumed = _until(lambda: (follower.call_op("last_tick") or 0) > killed + 0.5 and
                     follower.call_op("last_tick"), timeout=15)
    assert resumed and resumed - killed <= 5.0, resumed - killed if resumed else None
    assert fresh_sim.market_data_lines() == 1


def test_a_garbage_quote_is_ignored_with_one_warning(fresh_sim, agents, redis_server):
    from ib_nice_funcs.fleet.redis_store import KEY_PREFIX
    from ib_nice_funcs.fleet.state import digest
    from ib_nice_funcs.symbols import parse_symbol

    reader = agents(fresh_sim, redis_url=redis_server.url)
    key = f"{KEY_PREFIX}:gw:127.0.0.1:{fresh_sim.port}:quote:{digest(parse_symbol('BTC-USD').key)}"
    redis_server.client().set(key, "q9|not|a quote")
    for _ in range(3):
        assert reader.call("token_price", "BTC-USD") > 0  # asked of IB instead
    said = [line for line in reader.logged() if "not this version's record" in line]
    assert len(said) == 1, said


def test_doctor_reports_the_shared_redis(sim, redis_server):
    from ib_nice_funcs.config import get_settings
    from ib_nice_funcs.doctor import run_checks

    settings = get_settings().replace(port=sim.port, redis_url=redis_server.url)
    fleet = next(c for c in run_checks(settings, probe_timeout=2) if c.name == "fleet")
    assert fleet.status == "ok" and "Redis at" in fleet.detail and "quotes" in fleet.detail


def test_following_another_process_line_uses_none_of_the_followers_lines(
        fresh_sim, agent_group, redis_server):
    holder, = agent_group(fresh_sim, 1, redis_url=redis_server.url, price_ttl=0)
    for _ in range(2):
        assert all(holder.call("token_prices", SYMBOLS).values())
    assert fresh_sim.market_data_lines() == len(SYMBOLS)
    # A follower allowed a single line of its own subscribes to all three: it
    # follows the holder's lines, which cost it none.
    follower, = agent_group(fresh_sim, 1, redis_url=redis_server.url, price_ttl=0,
                            max_market_data_lines=1)
    follower.send({"op": "subscribe", "symbols": SYMBOLS})
    follower.answer()
    assert sorted(follower.call_op("lines")) == sorted(SYMBOLS)
    assert fresh_sim.market_data_lines() == len(SYMBOLS)
