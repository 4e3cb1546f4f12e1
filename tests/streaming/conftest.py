"""Fixtures of the streaming tests: clients of their own, closed at teardown."""

from __future__ import annotations

import pytest


@pytest.fixture
def make_client(new_client_id):
    """``make_client(sim, **settings)``: a Client on ``sim`` with a fresh client id."""
    from ib_nice_funcs import Client

    made = []

    def make(sim, **settings):
        settings.setdefault("timeout", 15)
        settings.setdefault("sources", "ib")
        settings.setdefault("clock", sim.market.clock)  # the simulator's market clock
        client = Client(host="127.0.0.1", port=sim.port, client_id=new_client_id(), **settings)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def go_live(client, symbol):
    """Ask twice: the second request opens a live ticker and answers from its first tick."""
    client.price(symbol)
    client._prices.clear()  # the 1 s price cache would answer the second ask
    client.price(symbol)
    assert symbol in live_symbols(client), live_symbols(client)


def live_symbols(client):
    return client._source("ib").tickers.live_symbols()


def tickers(client):
    return client._source("ib").tickers
