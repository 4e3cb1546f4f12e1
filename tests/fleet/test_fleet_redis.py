"""Redis: the agent processes of several hosts share the halt, the risk lock, order ids
and the day's baseline, and fail safe when Redis goes away.

A real redis-server on loopback (started by the test) and real agent
processes; each agent gets a fleet directory of its own, so only Redis can
carry what they share (as for processes on different hosts).
"""

from __future__ import annotations

from .conftest import ask_all


def _isolated_hosts(tmp_path, count):
    return [str(tmp_path / f"host{k}") for k in range(count)]


def test_a_halt_reaches_processes_on_other_hosts(tsim, agents, redis_server, tmp_path):
    here, there = (agents(tsim, redis_url=redis_server.url, fleet_dir=d)
                   for d in _isolated_hosts(tmp_path, 2))
    assert there.call("market_buy", "AAPL", 500)["success"]
    assert here.call("emergency_stop")["success"]
    refused = there.call("market_buy", "AAPL", 500)
    assert refused["success"] is False and "halted" in refused["error"]
    assert str(here.proc.pid) in refused["error"]
    resumed = there.call("resume_trading")
    assert resumed["was_halted"] and str(here.proc.pid) in resumed["halted_by"]
    assert here.call("market_buy", "AAPL", 500)["success"]


def test_ten_processes_on_ten_hosts_cannot_breach_the_exposure_limit(
        tsim, agent_group, redis_server):
    limit = 1_500.0
    group = agent_group(tsim, 10, max_exposure_usd=limit, redis_url=redis_server.url)
    for k, agent in enumerate(group):
        agent.configure(fleet_dir=f"/nonexistent/host{k}")  # nothing shared but Redis
        agent.call("token_price", "AAPL")
    results = ask_all(group, "market_buy", "AAPL", 400)
    bought = [r for r in results if r["success"]]
    refused = [r for r in results if not r["success"]]
    assert bought and refused
    assert all("max_exposure_usd" in r["error"] for r in refused), refused
    assert sum(r["filled_qty"] * r["avg_price"] for r in bought) <= limit * 1.01


def test_one_client_order_id_across_hosts_is_one_order(tsim, agent_group, redis_server):
    group = agent_group(tsim, 3, redis_url=redis_server.url)
    for k, agent in enumerate(group):
        agent.configure(fleet_dir=f"/nonexistent/host{k}")
    price = round(group[0].call("token_price", "AAPL") * 0.5, 2)
    results = ask_all(group, "place_order", "AAPL", "BUY", 1, "LMT", limit_price=price,
                      client_order_id="redis-once")
    assert tsim.sim.order_count == 1
    assert len({r["perm_id"] for r in results if r["success"]}) == 1
    assert all(r["success"] or "is being placed by process" in r["error"] for r in results)


def test_redis_going_away_fails_safe_and_rejoins(tsim, agents, redis_server):
    agent = agents(tsim, redis_url=redis_server.url)
    assert agent.call("market_buy", "AAPL", 500)["success"]
    redis_server.stop()
    refused = agent.call("market_buy", "AAPL", 500)
    assert refused["success"] is False and "Redis" in refused["error"], refused
    assert agent.call("token_price", "AAPL") > 0  # data goes on
    assert agent.call("market_sell", "AAPL", 100)["success"]  # closing orders go
    unreachable = [line for line in agent.logged() if "unreachable" in line and "WARNING" in line]
    assert len(unreachable) == 1, unreachable
    redis_server.start()
    assert agent.call("market_buy", "AAPL", 500)["success"]
    assert any("reachable again" in line for line in agent.logged())


def test_garbage_under_the_prefix_is_never_trusted_for_risk(tsim, agents, redis_server):
    agent = agents(tsim, redis_url=redis_server.url)
    assert agent.call("market_buy", "AAPL", 300)["success"]
    account = agent.call("get_open_orders") is not None and "DU1234567"
    db = redis_server.client()
    db.set(f"ib_nice_funcs:fleet:1:{account}:halt", "not json")
    db.hset(f"ib_nice_funcs:fleet:1:{account}:working", "x", "{garbage")
    refused = agent.call("market_buy", "AAPL", 300)
    assert refused["success"] is False and "halted" in refused["error"]
    assert "unreadable" in refused["error"]
    assert agent.call("resume_trading")["success"]
    assert agent.call("market_buy", "AAPL", 300)["success"]
    assert any("not this version's record" in line for line in agent.logged())
