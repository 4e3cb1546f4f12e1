"""Put IB in front of an existing nice_funcs module with ``install``.

The module keeps its own functions as the fallback: a symbol IB cannot parse
(a Solana mint address, say) or an IB failure goes to the original.
"""

from __future__ import annotations

import types

import ib_nice_funcs
from ib_nice_funcs.sim import run_simulator

# Stand-in for `from src import nice_funcs as n` in an existing agent.
n = types.ModuleType("nice_funcs")
n.token_price = lambda address: 0.0123  # the module's own (e.g. a Solana price API)

with run_simulator(seed=1) as sim:
    ib_nice_funcs.configure(port=sim.port, sources="ib")
    ib_nice_funcs.install(n)
    print("AAPL via IB:          ", n.token_price("AAPL"))
    print("Solana mint via module:", n.token_price("So11111111111111111111111111111111111111112"))
    ib_nice_funcs.close()
