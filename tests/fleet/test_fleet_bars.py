"""Shared bars: one keepUpToDate series per symbol across processes, and finished ranges
fetched once. Real agent processes, a real Redis, the simulator's market clock."""

from __future__ import annotations

from .conftest import ask_all


def _historical(handle) -> int:
    return handle.request_counts().get("reqHistoricalData", 0)


def test_four_processes_polling_bars_send_one_request_per_symbol(
        fresh_sim, agent_group, redis_server):
    group = agent_group(fresh_sim, 4, redis_url=redis_server.url, timeout=30)
    before = _historical(fresh_sim)
    for _ in range(3):  # three polls of each process
        for got in ask_all(group, "get_ohlcv_data", "BTC-USD", "15m", days_back=1):
            assert got["rows"] > 0, got
    assert _historical(fresh_sim) - before == 1


def test_older_bars_one_process_fetched_are_served_to_the_others(
        fresh_sim, agent_group, redis_server):
    holder, second, third = agent_group(fresh_sim, 3, redis_url=redis_server.url, timeout=30)
    before = _historical(fresh_sim)
    assert holder.call("get_ohlcv_data", "ETH-USD", "1h", days_back=1)["rows"] > 0
    assert _historical(fresh_sim) - before == 1  # the kept series
    longer = second.call("get_ohlcv_data", "ETH-USD", "1h", days_back=3)
    assert longer["rows"] > 0
    sent = _historical(fresh_sim) - before
    assert sent > 1  # the older part, fetched once
    assert third.call("get_ohlcv_data", "ETH-USD", "1h", days_back=3) == longer
    assert _historical(fresh_sim) - before == sent


def test_a_dead_series_holder_is_replaced_by_the_next_process_asking(
        fresh_sim, agent_group, redis_server):
    import time

    holder, follower = agent_group(fresh_sim, 2, redis_url=redis_server.url, timeout=30)
    assert holder.call("get_ohlcv_data", "LTC-USD", "15m", days_back=1)["rows"] > 0
    assert follower.call("get_ohlcv_data", "LTC-USD", "15m", days_back=1)["rows"] > 0
    before = _historical(fresh_sim)
    holder.kill()
    give_up = time.monotonic() + 30  # the lease (10 s) runs out, then the next ask opens one
    while _historical(fresh_sim) == before and time.monotonic() < give_up:
        assert follower.call("get_ohlcv_data", "LTC-USD", "15m", days_back=1)["rows"] > 0
        time.sleep(0.2)  # an agent's polling interval, not a synchronisation
    assert _historical(fresh_sim) == before + 1
