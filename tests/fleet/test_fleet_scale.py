"""What a fleet sends to its gateway grows with the symbols, not with the processes.

Twenty agents polling fifty symbols each used to send a contract-details
request and a snapshot per symbol and process (a thousand of each), which
at each process's share of IB's message rate kept every connection's queue
full for minutes. Real agent processes, a real Redis, the simulator's
request counts.
"""

from __future__ import annotations

from .conftest import ask_all

# Symbols that tick at any hour (a line without ticks is not served as current).
SYMBOLS = ["BTC-USD", "ETH-USD", "LTC-USD", "BCH-USD", "EURUSD", "GBPUSD"]


def test_processes_asking_the_same_prices_send_per_symbol_not_per_process(
        fresh_sim, agent_group, redis_server):
    group = agent_group(fresh_sim, 4, redis_url=redis_server.url, price_ttl=0.001)
    before = fresh_sim.request_counts()
    for _ in range(2):  # all at once, twice: the second ask of each symbol is streamed
        for prices in ask_all(group, "token_prices", SYMBOLS):
            assert all(prices[s] for s in SYMBOLS), prices
    sent = {name: n - before.get(name, 0) for name, n in fresh_sim.request_counts().items()}
    # One process asks IB for each contract; the others read its answer from Redis.
    assert sent.get("reqContractDetails", 0) == len(SYMBOLS), sent
    # The first ask of a symbol in the fleet is a snapshot; a later one, by any
    # process, opens or follows the fleet's one line instead of sending a
    # snapshot of its own (a line's first tick may still come too late for a
    # caller or two: fewer than one message per process and symbol, not one).
    assert sent.get("reqMktData", 0) < len(group) * len(SYMBOLS), sent
    assert fresh_sim.market_data_lines() == len(SYMBOLS)


def test_a_contract_asked_of_ib_by_one_process_is_read_by_another(
        fresh_sim, agent_group, redis_server):
    first, second = agent_group(fresh_sim, 2, redis_url=redis_server.url, price_ttl=0.001)
    assert first.call("token_price", "ETH-USD") > 0
    asked = fresh_sim.request_counts().get("reqContractDetails", 0)
    assert second.call("token_price", "ETH-USD") > 0
    assert fresh_sim.request_counts().get("reqContractDetails", 0) == asked
