"""Live tickers: hot symbols answered with no message, the line budget, LRU eviction, faults."""

from __future__ import annotations

import queue
import threading
import time
from datetime import datetime, timezone

import pytest

import ib_nice_funcs as n
from ib_nice_funcs.errors import MarketDataNotSubscribedError, RequestTimeoutError
from ib_nice_funcs.streaming import MarketDataLinesExhaustedError

from .conftest import go_live, live_symbols, tickers


def test_first_ask_is_a_snapshot_the_second_goes_live(sim, make_client):
    client = make_client(sim)
    before = sim.request_counts().get("reqMktData", 0)
    client.price("ETH-USD")
    assert live_symbols(client) == []
    client._prices.clear()
    client.price("ETH-USD")
    assert live_symbols(client) == ["ETH-USD"]
    # One snapshot and one stream.
    assert sim.request_counts()["reqMktData"] - before == 2


def test_warm_prices_send_no_message(sim, make_client):
    client = make_client(sim)
    for symbol in ("BTC-USD", "EURUSD", "AAPL"):
        go_live(client, symbol)
    before = sim.request_counts()
    for _ in range(2000):
        for symbol in ("BTC-USD", "EURUSD", "AAPL", "btc/usd", "EUR.USD"):
            assert client.price(symbol) > 0
    many = client.prices(["BTC-USD", "EURUSD", "AAPL"])
    assert all(v > 0 for v in many.values())
    assert sim.request_counts() == before


def test_module_level_warm_token_price_sends_nothing(use_sim):
    n.token_price("LTC-USD")
    n.default_client()._prices.clear()
    n.token_price("LTC-USD")
    before = use_sim.request_counts()
    prices = [n.token_price("LTC-USD") for _ in range(1000)]
    assert all(p > 0 for p in prices)
    assert n.token_prices(["LTC-USD"])["LTC-USD"] > 0
    assert use_sim.request_counts() == before


def test_a_stale_tick_falls_back_to_a_snapshot(sim, make_client):
    client = make_client(sim)
    go_live(client, "BCH-USD")
    live = tickers(client)
    before = sim.request_counts()["reqMktData"]
    live.stale_after = 0.0  # every tick is too old now
    assert client.live_price("BCH-USD") is None
    client._prices.clear()
    assert client.price("BCH-USD") > 0
    assert sim.request_counts()["reqMktData"] == before + 1  # one snapshot
    live.stale_after = 10.0
    assert client.live_price("BCH-USD") > 0


def test_the_line_budget_evicts_the_least_recently_read(sim, make_client):
    client = make_client(sim, max_market_data_lines=3)
    for symbol in ("AAPL", "MSFT", "GOOGL"):
        go_live(client, symbol)
    assert client.price("AAPL") > 0  # read: MSFT is now the least recently read
    cancels = sim.request_counts().get("cancelMktData", 0)
    go_live(client, "AMZN")
    assert sorted(live_symbols(client)) == ["AAPL", "AMZN", "GOOGL"]
    assert tickers(client).lines == 3
    # The cancel reaches the simulator on the loop thread's next write.
    client.server_time()
    assert sim.request_counts().get("cancelMktData", 0) == cancels + 1


def test_subscriptions_pin_their_lines(sim, make_client):
    client = make_client(sim, max_market_data_lines=2)
    with client.subscribe(["NVDA", "TSLA"], lambda *a: None):
        # Every line is held: a hot symbol stays on snapshots, a new subscription is refused.
        client.price("META")
        client._prices.clear()
        assert client.price("META") > 0
        assert sorted(live_symbols(client)) == ["NVDA", "TSLA"]
        with pytest.raises(MarketDataLinesExhaustedError, match="max_market_data_lines"):
            client.subscribe("SPY", lambda *a: None)
    client.server_time()  # the release ran on the loop thread before this answer
    assert tickers(client).lines == 0


def test_subscribe_calls_back_on_a_worker_thread(sim, make_client):
    client = make_client(sim)
    got: queue.Queue = queue.Queue()

    def callback(symbol, price, when):
        got.put((symbol, price, when, threading.current_thread().name))

    with client.subscribe(["BTC-USD", "eurusd"], callback) as handle:
        seen = {}
        deadline = time.monotonic() + 10
        while len(seen) < 2 and time.monotonic() < deadline:
            symbol, price, when, thread = got.get(timeout=10)
            seen[symbol] = (price, when, thread)
    assert set(seen) == {"BTC-USD", "eurusd"}  # symbols as given
    for price, when, thread in seen.values():
        assert price > 0 and when.tzinfo is not None
        assert thread.startswith("ib-nice-funcs-sub") and thread != "ib-nice-funcs-loop"
    assert not handle.active


def test_a_failing_callback_does_not_end_the_stream(sim, make_client, warnings_log):
    client = make_client(sim)
    calls: queue.Queue = queue.Queue()

    def callback(symbol, price, when):
        calls.put(price)
        raise RuntimeError("agent bug")

    with client.subscribe(["ETH-USD", "BTC-USD"], callback):
        calls.get(timeout=10)
        calls.get(timeout=10)  # called again after raising
    assert "agent bug" in warnings_log.text


def test_stream_prices_iterates_until_its_duration(sim, make_client):
    client = make_client(sim)
    t0 = time.monotonic()
    updates = list(client.stream_prices(["BTC-USD", "ETH-USD"], duration=1.5))
    assert time.monotonic() - t0 < 5
    assert {u.symbol for u in updates} == {"BTC-USD", "ETH-USD"}
    assert all(u.price > 0 and isinstance(u.time, datetime) for u in updates)


def test_breaking_out_of_a_stream_releases_its_lines(sim, make_client):
    client = make_client(sim)
    for update in client.stream_prices("USDJPY"):
        assert update.symbol == "USDJPY"
        break
    client.server_time()
    assert tickers(client).lines == 0


def _first_after(updates: queue.Queue, moment: datetime) -> tuple:
    while True:
        update = updates.get(timeout=15)
        if update[2] > moment:
            return update


def test_streams_and_warm_prices_resume_after_a_dropped_connection(fresh_sim, make_client):
    client = make_client(fresh_sim)
    go_live(client, "ETH-USD")
    stream = client.stream_prices(["BTC-USD"], timeout=15)
    ltc: queue.Queue = queue.Queue()
    eth: queue.Queue = queue.Queue()
    sub = client.subscribe("LTC-USD", lambda *update: ltc.put(update))
    watch = client.subscribe("ETH-USD", lambda *update: eth.put(update))
    assert next(stream).symbol == "BTC-USD"
    ltc.get(timeout=10)
    connects = fresh_sim.request_counts()["startApi"]
    dropped_at = datetime.now(timezone.utc)
    fresh_sim.drop_connections()
    # Every stream delivers again by itself: the first tick after the
    # reconnect is always delivered.
    update = next(u for u in stream if u.time > dropped_at)
    assert update.symbol == "BTC-USD" and update.price > 0
    assert _first_after(ltc, dropped_at)[1] > 0
    assert _first_after(eth, dropped_at)[1] > 0
    assert fresh_sim.request_counts()["startApi"] == connects + 1
    # The hot symbol's ticker is back: warm again, nothing sent.
    before = fresh_sim.request_counts()
    assert client.live_price("ETH-USD") > 0
    assert client.price("ETH-USD") > 0
    assert fresh_sim.request_counts() == before
    stream.close()
    sub.close()
    watch.close()


def test_ib_1101_data_lost_resubscribes(sim, make_client):
    client = make_client(sim)
    got: queue.Queue = queue.Queue()
    with client.subscribe("GBPUSD", lambda *update: got.put(update)):
        got.get(timeout=10)
        before = sim.request_counts()["reqMktData"]

        async def data_lost():
            ib = await client.gateway.ib_async()
            ib.errorEvent.emit(-1, 1101, "Connectivity between IB and TWS has been restored- "
                                         "data lost.", None)

        lost_at = datetime.now(timezone.utc)
        client.gateway.call(data_lost, 5, "simulate 1101")
        while True:  # the first tick of the new subscription is delivered
            symbol, price, when = got.get(timeout=10)
            if when > lost_at:
                break
        client.server_time()  # a round trip: the simulator has read all we sent
        assert sim.request_counts()["reqMktData"] == before + 1
        assert sim.request_counts()["cancelMktData"] >= 1


def test_not_subscribed_market_data(fresh_sim, make_client, new_client_id, warnings_log):
    fresh_sim.set_market_data_subscribed(False)
    client = make_client(fresh_sim)
    with pytest.raises(MarketDataNotSubscribedError, match="market_data_type=3"):
        client.subscribe("AAPL", lambda *a: None)
    assert tickers(client).lines == 0
    n.configure(host="127.0.0.1", port=fresh_sim.port, client_id=new_client_id(),
                sources="ib", timeout=15, clock=fresh_sim.market.clock)
    handle = n.subscribe(["AAPL"], lambda *a: None)
    assert not handle.active and "AAPL" in handle.errors
    assert list(n.stream_prices("AAPL")) == []
    assert "354" in warnings_log.text


def test_a_silent_stream_times_out(fresh_sim, make_client, warnings_log):
    client = make_client(fresh_sim)
    stream = client.stream_prices("BTC-USD", timeout=0.5)
    assert next(stream).price > 0
    fresh_sim.set_blackhole(True)  # the open connection goes silent
    with pytest.raises(RequestTimeoutError, match="no price update within 0.5 s"):
        while True:
            next(stream)
    assert stream.closed


def test_stream_arguments_are_checked_before_anything_is_sent(sim, make_client):
    client = make_client(sim)
    before = sim.request_counts()
    with pytest.raises(ValueError):
        client.stream_prices([])
    with pytest.raises(ValueError):
        client.stream_prices("AAPL", timeout=-1)
    with pytest.raises(TypeError):
        client.subscribe("AAPL", "not callable")
    with pytest.raises(ValueError):
        n.subscribe("", print)
    assert sim.request_counts() == before
