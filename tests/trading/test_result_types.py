"""The result dicts' declared TypedDicts (ib_nice_funcs.model) match what the code returns.

The annotations are what IDEs and mypy show; these tests pin that they name
the TypedDicts, and that real results from the simulator carry no key the
TypedDict does not declare (and every key it requires).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

import ib_nice_funcs as n
from ib_nice_funcs.errors import OrderRejectedError
from ib_nice_funcs.model import CancelAllResult, FlattenReport, OpenOrderRow, OrderResult
from ib_nice_funcs.trading import Trader, module_api
from ib_nice_funcs.trading.router import OrderRouter
from ib_nice_funcs.trading.venues.base import Venue
from ib_nice_funcs.trading.venues.portal_failover import PortalFailover
from ib_nice_funcs.trading.venues.tws import TwsVenue

ORDER_HELPERS = ("market_buy", "market_sell", "market_sell_usd", "limit_buy", "limit_sell",
                 "place_order", "cancel_order", "close_position", "kill_switch")


def _shape_problems(result: Mapping[str, Any], shape: Any) -> list[str]:
    """Keys of ``result`` the TypedDict ``shape`` does not declare, and required ones missing."""
    keys = set(result)
    declared = shape.__required_keys__ | shape.__optional_keys__
    return ([f"undeclared {k!r}" for k in sorted(keys - declared)]
            + [f"missing {k!r}" for k in sorted(shape.__required_keys__ - keys)])


def _check_all(results: Iterable[Mapping[str, Any]], shape: Any) -> None:
    problems = {f"{i}: {r.get('status')}": _shape_problems(r, shape)
                for i, r in enumerate(results)}
    assert {where: p for where, p in problems.items() if p} == {}


@pytest.mark.parametrize("name", ORDER_HELPERS)
def test_order_helpers_are_annotated_with_order_result(name):
    assert typing.get_type_hints(getattr(Trader, name))["return"] is OrderResult
    assert typing.get_type_hints(getattr(Trader, f"{name}_async"))["return"] is OrderResult
    assert typing.get_type_hints(getattr(module_api, name))["return"] is OrderResult


def test_getting_out_and_router_venue_annotations():
    hints = {name: typing.get_type_hints(getattr(Trader, name))["return"]
             for name in ("cancel_all", "emergency_stop", "get_open_orders")}
    assert hints == {"cancel_all": CancelAllResult, "emergency_stop": FlattenReport,
                     "get_open_orders": list[OpenOrderRow]}
    # The router and venues import their types for the checker only: compare the names.
    for owner in (OrderRouter, Venue, TwsVenue, PortalFailover):
        for method in ("place", "cancel", "close"):
            got = inspect.get_annotations(getattr(owner, method))["return"]
            assert got == "OrderResult", (owner.__name__, method, got)


def test_simulator_results_have_only_declared_keys(tsim, trader, make_client):
    results: list[Mapping[str, Any]] = []
    price = trader.client.price("ETH-USD")
    results.append(trader.market_buy("AAPL", 1000))
    resting = trader.limit_buy("ETH-USD", 1000, round(price * 0.9, 2))
    assert resting["status"] in ("Submitted", "PreSubmitted")
    results.append(resting)
    opened = trader.get_open_orders()
    results.append(trader.cancel_order(resting["order_id"]))
    results.append(trader.cancel_order(987654))  # NotFound
    aapl = trader.client.price("AAPL")
    working = trader.limit_sell("AAPL", 100, round(aapl * 1.5, 2), tif="GTC")
    results.append(working)
    killed = trader.kill_switch("AAPL")
    assert killed["cancelled_orders"] == 1
    results.append(killed)
    results.append(trader.close_position("MSFT"))  # NoPosition
    # Crypto cannot be sold short at PAXOS: the simulator rejects it (exc.result).
    unlimited = make_client(tsim, max_position_usd=1e9, max_exposure_usd=1e9).trading
    with pytest.raises(OrderRejectedError) as refused:
        unlimited.place_order("BTC-USD", "SELL", 0.5)
    results.append(refused.value.result)

    statuses = {r["status"] for r in results}
    assert {"Filled", "Cancelled", "NotFound", "NoPosition"} <= statuses
    _check_all(results, OrderResult)
    _check_all([*opened, *killed["uncancelled"]], OpenOrderRow)


def test_getting_out_results_match_their_shapes(tsim, trader):
    trader.market_buy("AAPL", 1000)
    price = trader.client.price("ETH-USD")
    trader.limit_buy("ETH-USD", 1000, round(price * 0.9, 2))
    cancelled = trader.cancel_all()
    assert cancelled["success"] is True
    _check_all([cancelled], CancelAllResult)
    stopped = trader.emergency_stop()
    assert stopped["closed"]
    _check_all([stopped], FlattenReport)
    _check_all(stopped["closed"], OrderResult)


def test_module_level_risk_refusal_is_an_order_result(tsim, new_client_id):
    n.configure(host="127.0.0.1", port=tsim.port, client_id=new_client_id(), sources="ib",
                max_position_usd=100, clock=tsim.market.clock)
    result = n.market_buy("BTC-USD", 1_000)
    assert result["risk_limit"] == "max_position_usd"
    _check_all([result], OrderResult)
