"""The fleet's safety holds for orders that fail over to the Client Portal too."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from ib_nice_funcs import Client
from ib_nice_funcs.errors import RiskLimitError

from .conftest import _OPEN_NY

PLACE = "POST /iserver/account/{acct}/orders"


@pytest.fixture
def both() -> Iterator[Any]:
    """TWS + Client Portal simulators on one paper account, market open, BTC at 50,000."""
    from ib_nice_funcs.sim import PaperMarket, run_simulator

    start = time.time()
    market = PaperMarket(seed=3, clock=lambda: _OPEN_NY + (time.time() - start))
    with run_simulator(market=market, portal=True) as handle:
        handle.market.set_price("BTC", 50_000.0)
        yield handle


def test_a_portal_order_counts_the_other_processes_working_orders(both, agents, new_client_id):
    other = agents(both)
    resting = other.call("place_order", "BTC-USD", "BUY", 0.02, "LMT", limit_price=45_000.0,
                         tif="GTC", client_order_id="fleet-resting")
    assert resting["success"] and resting["status"] in ("Submitted", "PreSubmitted"), resting
    with Client(host="127.0.0.1", port=both.port, client_id=new_client_id(),
                sources="ib,portal", portal_url=both.portal.url, portal_ca=both.portal.ca_path,
                timeout=15, order_failover=True, max_exposure_usd=1_200.0,
                clock=both.market.clock) as client:
        both.set_refuse_new(True)  # TWS takes no new connection: this process fails over
        with pytest.raises(RiskLimitError) as refused:
            # $500 alone is within $1,200; with the other process's $900 working it is not.
            client.trading.market_buy("BTC-USD", 500)
        assert refused.value.breach.limit == "max_exposure_usd"
        assert both.portal.request_counts()[PLACE] == 0
        both.set_refuse_new(False)
    assert other.call("cancel_order", "fleet-resting")["success"]
