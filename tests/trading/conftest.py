"""Fixtures of the trading tests: a simulator of the test's own, with the market open.

Each state-changing test gets a fresh simulator (positions, orders and the
order counter start from zero) whose market clock sits on a Wednesday at
15:00 New York time and moves with the wall clock, so stock orders fill
whenever the suite runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

#: A regular-hours moment (Wednesday 2026-11-18 15:00 ET); an hour before the close.
OPEN_NY = datetime(2026, 11, 18, 15, 0, tzinfo=ZoneInfo("America/New_York")).timestamp()


def open_market_clock() -> Callable[[], float]:
    start = time.time()
    return lambda: OPEN_NY + (time.time() - start)


@pytest.fixture
def sim_factory() -> Iterator[Callable[..., Any]]:
    """Start simulators (market open) for this test; all stop at its end."""
    import contextlib

    from ib_nice_funcs.sim import PaperMarket, run_simulator

    with contextlib.ExitStack() as stack:

        def start(seed: int = 3, **kwargs: Any) -> Any:
            market = PaperMarket(seed=seed, clock=open_market_clock())
            return stack.enter_context(run_simulator(market=market, **kwargs))

        yield start


@pytest.fixture
def tsim(sim_factory):
    """A fresh paper-account simulator with the market open."""
    return sim_factory()


@pytest.fixture
def make_client(new_client_id) -> Iterator[Callable[..., Any]]:
    """Build Clients on a simulator; every one is closed at the end of the test."""
    from ib_nice_funcs import Client

    made: list[Any] = []

    def make(handle: Any, client_id: int | None = None, **settings: Any) -> Any:
        settings.setdefault("timeout", 10)
        # The code under test dates fills by the simulator's market clock, so the
        # suite passes on any real date and time of day.
        market = getattr(getattr(handle, "sim", None), "market", None)
        if market is not None:
            settings.setdefault("clock", market.clock)
        if client_id is None:
            client_id = new_client_id()
        client = Client(host="127.0.0.1", port=handle.port, sources="ib", client_id=client_id,
                        **settings)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def trader(tsim, make_client):
    """The Trader of a Client connected to ``tsim``."""
    return make_client(tsim).trading


@pytest.fixture
def wait_status() -> Callable[..., str]:
    """``wait_status(trader, client_order_id, {"Filled"})``: event-driven wait, bounded."""
    return _wait_for_status


@pytest.fixture
def observer(make_client) -> Callable[[Any], Any]:
    """``observer(handle)``: the Trader of a separate client that only looks.

    Tests check the gateway's state through the protocol (another API
    client's view of positions and open orders), not the simulator's insides.
    """
    seen: dict[int, Any] = {}

    def get(handle: Any) -> Any:
        if id(handle) not in seen:
            seen[id(handle)] = make_client(handle).trading
        return seen[id(handle)]

    return get


@pytest.fixture
def book(observer) -> Callable[[Any], dict[str, float]]:
    """``book(handle)``: the account's positions at the gateway, symbol -> quantity."""
    return lambda handle: {p["symbol"]: p["quantity"] for p in observer(handle).get_all_positions()}


@pytest.fixture
def sim_open_orders(observer) -> Callable[[Any], list[dict[str, Any]]]:
    """``sim_open_orders(handle)``: every open order at the gateway (all clients)."""
    return lambda handle: observer(handle).get_open_orders()


@pytest.fixture
def match_now() -> Callable[[Any], None]:
    """``match_now(handle)``: run one matching pass on the simulator now (synchronously).

    Its order loop does this every tick; calling it directly lets a test make
    the engine see an intermediate price (a trailing stop's new high) without
    sleeping. Needs the bundled simulator's engine; skips on other gateways.
    """

    def run(handle: Any) -> None:
        sim = handle.sim
        if not hasattr(sim, "engine"):
            pytest.skip("this gateway has no synchronous matching pass")
        handle.call(lambda: sim.dispatch_events(sim.engine.on_time(sim.market.now())))

    return run


def _wait_for_status(
    trader: Any, client_order_id: str, statuses: set[str], timeout: float = 5.0
) -> str:
    """Block until the order reaches one of ``statuses`` (event-driven, bounded)."""
    import asyncio

    from ib_nice_funcs.trading.results import effective_status

    record = trader.ctx.ledger[client_order_id]
    trade = record.trade

    async def wait() -> str:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[str] = loop.create_future()

        def check(*_: Any) -> None:
            status = effective_status(trade)
            if status in statuses and not done.done():
                done.set_result(status)

        trade.statusEvent += check
        try:
            check()
            return await asyncio.wait_for(done, timeout)
        finally:
            trade.statusEvent -= check

    return trader.gateway.call(wait, timeout + 1, f"wait for {client_order_id}")
