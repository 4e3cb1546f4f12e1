"""One host, no Redis: the agent processes share the halt, the risk lock and order ids.

Every agent is a real process; the shared state is the files of the test's
fleet directory.
"""

from __future__ import annotations

import os

from ib_nice_funcs import Client
from ib_nice_funcs.cli import main

from .conftest import ask_all


def test_a_halt_in_one_process_stops_opening_orders_in_all_until_resume(
        tsim, agent_group, tmp_path, new_client_id, capsys):
    stopper, other = agent_group(tsim, 2)
    assert other.call("market_buy", "AAPL", 500)["success"]
    stop = stopper.call("emergency_stop")
    assert stop["success"], stop
    refused = other.call("market_buy", "AAPL", 500)
    assert refused["success"] is False
    assert "halted" in refused["error"] and str(stopper.proc.pid) in refused["error"]
    assert "resume_trading()" in refused["error"]
    # Closing orders still go: a position opened outside this fleet is sold by the halted one.
    with Client(port=tsim.port, sources="ib", client_id=new_client_id(),
                fleet_dir=str(tmp_path / "elsewhere"), clock=tsim.sim.market.clock) as outside:
        assert outside.trading.market_buy("AAPL", 500)["success"]
    assert other.call("market_sell", "AAPL", 100)["success"]
    # Any process (here the command line) lifts it for all.
    assert main(["resume", "--port", str(tsim.port), "--client-id", str(new_client_id())]) == 0
    assert "trading resumed" in capsys.readouterr().out
    assert stopper.call("market_buy", "AAPL", 500)["success"]
    assert other.call("resume_trading")["was_halted"] is False


def test_ten_processes_racing_cannot_breach_the_exposure_limit(tsim, agent_group):
    limit = 1_500.0
    group = agent_group(tsim, 10, max_exposure_usd=limit)
    for agent in group:
        agent.call("token_price", "AAPL")  # connected and warm: the race is the orders
    results = ask_all(group, "market_buy", "AAPL", 400)
    bought = [r for r in results if r["success"]]
    refused = [r for r in results if not r["success"]]
    spent = sum(r["filled_qty"] * r["avg_price"] for r in bought)
    assert bought and refused
    assert all("max_exposure_usd" in r["error"] for r in refused), refused
    # The check prices at the quote, the fill at the ask: a cent's drift per share at most.
    assert spent <= limit * 1.01, (spent, len(bought))


def test_one_client_order_id_from_three_processes_is_one_order(tsim, agent_group):
    group = agent_group(tsim, 3)
    for agent in group:
        agent.call("token_price", "AAPL")
    price = round(group[0].call("token_price", "AAPL") * 0.5, 2)
    results = ask_all(group, "place_order", "AAPL", "BUY", 1, "LMT", limit_price=price,
                      client_order_id="fleet-once")
    assert tsim.sim.order_count == 1
    placed = {r["perm_id"] for r in results if r["success"]}
    assert len(placed) == 1, results
    for r in results:
        assert r["success"] or "is being placed by process" in r["error"], r
    # Asked again, every process finds the one order.
    again = ask_all(group, "place_order", "AAPL", "BUY", 1, "LMT", limit_price=price,
                    client_order_id="fleet-once")
    assert {r["perm_id"] for r in again} == placed and tsim.sim.order_count == 1


def test_the_state_lives_in_the_fleet_directory(tsim, agents, fleet_dir):
    agent = agents(tsim)
    agent.call("emergency_stop")
    assert any(name.endswith(".json") for name in os.listdir(fleet_dir))
