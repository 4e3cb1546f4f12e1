"""Trustworthy under connection faults: silent links, IB's 1100/1101/1102, drops.

Every fault comes from the TWS simulator's knobs (``half_open``/``heal``,
``broadcast_error``, ``drop_connections``, ``set_refuse_new``); yfinance is
stubbed at its boundary (``yfinance.Ticker``). Waits are on events (a hook
run after a reconnect, a round trip that orders the socket), never sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import timezone

import pytest
from test_fallback import FakeTicker

from ib_nice_funcs._fallback import FallbackNotices
from ib_nice_funcs._link import LinkHealth, heartbeat_step
from ib_nice_funcs.errors import ConnectionFailedError, IBNiceFuncsError, RequestTimeoutError

from .conftest import go_live


def settle_reads(client) -> None:
    """Let the client's loop read what the simulator wrote before it went silent.

    ``half_open()`` returns once the simulator holds back its output, but ticks
    it wrote just before are already in the socket; read now, they would count
    as "heard" after the test moved the link's clock and make it current again.
    A few turns of the loop read everything that is already there.
    """

    async def turns() -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    client._loop.run(turns, 5, "read what is in flight")


class StepClock:
    """A monotonic clock the test moves by hand (the link's notion of time)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def yahoo(mocker):
    import yfinance

    return mocker.patch.object(yfinance, "Ticker", side_effect=FakeTicker)


def reconnects(client) -> threading.Event:
    """An event set after the client's next successful (re)connect."""
    done = threading.Event()

    async def hook(ib):
        done.set()

    client.gateway.on_connected.append(hook)
    return done


def disconnects(client) -> threading.Event:
    """An event set when the client's current connection goes."""
    gone = threading.Event()

    async def arm() -> None:
        ib = await client.gateway.ib_async()
        ib.disconnectedEvent += gone.set

    client.gateway.call(arm, 5, "arm disconnect")
    return gone


# ------------------------------------------------------------------- I/O-free rules
def test_heartbeat_step_probes_a_quiet_link_and_declares_a_silent_one_dead():
    interval = 10.0
    assert heartbeat_step(105.0, 100.0, None, interval) == ("ok", None)
    assert heartbeat_step(110.0, 100.0, None, interval) == ("probe", 110.0)
    assert heartbeat_step(115.0, 100.0, 110.0, interval) == ("ok", 110.0)
    assert heartbeat_step(120.0, 100.0, 110.0, interval) == ("dead", 110.0)
    # an answer (anything heard after the probe) clears it
    assert heartbeat_step(120.0, 111.0, 110.0, interval) == ("ok", None)


def test_a_probe_still_in_the_connections_own_queue_is_not_a_silent_gateway():
    # Twenty processes at 2 messages a second each: a probe may wait behind the
    # process's own requests; the gateway cannot answer what it never got.
    interval = 10.0
    assert heartbeat_step(120.0, 100.0, 110.0, interval, still_queued=True) == ("ok", 120.0)
    assert heartbeat_step(130.0, 100.0, 120.0, interval) == ("dead", 120.0)


def test_link_health_notices_and_epochs():
    clock = StepClock()
    health = LinkHealth(5.0, clock)
    assert not health.current  # never connected
    health.up()
    assert health.current
    epoch = health.epoch
    assert health.notice(1100) == "lost" and not health.current and health.epoch > epoch
    assert "1100" in health.why_not_current()
    epoch = health.epoch
    assert health.notice(1102) == "restored_data_kept" and health.current
    assert health.epoch == epoch  # data maintained: what was held stays valid
    health.notice(1100)
    epoch = health.epoch
    assert health.notice(1101) == "restored_data_lost" and health.epoch > epoch
    clock.now += 10.01  # silent for more than two intervals
    assert not health.current and "sent nothing" in health.why_not_current()
    health.heard()
    assert health.current
    health.down()
    assert not health.current and "down" in health.why_not_current()


def test_held_cache_serves_ib_values_only_in_their_epoch_while_current():
    from ib_nice_funcs._held import HeldCache

    clock = StepClock()
    health = LinkHealth(5.0, clock)
    health.up()
    cache: HeldCache[float] = HeldCache(16, 60.0)
    cache.put(("ib", "AAPL"), 1.0, health.epoch)
    cache.put(("yfinance", "AAPL"), 2.0, None)
    assert cache.get(("ib", "AAPL"), health) == 1.0
    assert cache.get(("ib", "AAPL"), None) is None  # no link known: not current
    clock.now += 11.0  # silent
    assert cache.get(("ib", "AAPL"), health) is None
    health.heard()
    assert cache.get(("ib", "AAPL"), health) == 1.0
    health.down()
    health.up()  # reconnected: a new epoch, the old value stays unserved
    assert cache.get(("ib", "AAPL"), health) is None
    assert cache.get(("yfinance", "AAPL"), health) == 2.0  # not held from IB


def test_heartbeat_interval_setting():
    from ib_nice_funcs.config import Settings
    from ib_nice_funcs.errors import ConfigurationError

    assert Settings().heartbeat_interval == 10.0
    assert Settings.from_env({"IB_NICE_FUNCS_HEARTBEAT": "2.5"}).heartbeat_interval == 2.5
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ConfigurationError, match="heartbeat_interval"):
            Settings(heartbeat_interval=bad)


def test_fallback_notices_once_per_symbol_and_outage(caplog):
    caplog.set_level(logging.WARNING, logger="ib_nice_funcs")
    notices = FallbackNotices()
    down = ConnectionFailedError("refused")
    notices.failed("ib", down)
    assert notices.fell_back("price of AAPL", "AAPL", {"ib": down}, "yfinance")
    assert not notices.fell_back("price of AAPL", "AAPL", {"ib": down}, "yfinance")
    assert notices.fell_back("price of MSFT", "MSFT", {"ib": down}, "yfinance")
    notices.failed("ib", down)  # still the same outage
    assert not notices.fell_back("price of AAPL", "AAPL", {"ib": down}, "yfinance")
    notices.answered("ib")
    notices.failed("ib", down)  # back, then down again: a new outage
    assert notices.fell_back("price of AAPL", "AAPL", {"ib": down}, "yfinance")
    assert len(caplog.records) == 3
    assert "answered by yfinance instead of ib" in caplog.records[0].getMessage()


# ---------------------------------------------------------------- silent link
def test_a_half_open_connection_is_replaced_and_trading_works_again(fresh_sim, make_client,
                                                                    warnings_log):
    client = make_client(fresh_sim, heartbeat_interval=1.0)  # replaced within 2.5 s
    client.server_time()
    assert client.gateway.connected
    back = reconnects(client)
    fresh_sim.half_open()
    assert back.wait(20), "the silent connection was not replaced"
    assert "half-open" in warnings_log.text and "replacing the connection" in warnings_log.text
    assert client.gateway.connected
    assert fresh_sim.request_counts()["startApi"] >= 2
    client.server_time()
    assert client.trading.emergency_stop()["success"]
    assert client.trading.get_open_orders() == []


def test_a_silent_link_serves_nothing_it_holds(fresh_sim, make_client):
    clock = StepClock()
    client = make_client(fresh_sim, heartbeat_interval=1.0)
    client.gateway.health.clock = clock  # the link's time moves only when the test says
    frame = client.ohlcv("BTC-USD", "1m", 0.05)
    assert frame.attrs["source"] == "ib" and frame.attrs["live"] is True
    assert not frame.attrs["cached"] and frame.attrs["fetched_at"].tzinfo is not None
    go_live(client, "ETH-USD")
    assert client.live_price("ETH-USD") > 0
    assert client.trading.get_account_value() > 0
    fresh_sim.half_open()
    settle_reads(client)
    clock.now += 2.5  # silent for longer than two heartbeat intervals
    assert client.live_price("ETH-USD") is None
    with pytest.raises(ConnectionFailedError, match="sent nothing"):
        client.ohlcv("BTC-USD", "1m", 0.05)  # neither the subscription nor the 15 s cache
    with pytest.raises(ConnectionFailedError):
        client.trading.get_account_value()
    # The link heals before the heartbeat gives up: the held data is served again.
    fresh_sim.heal()
    client.server_time()
    again = client.ohlcv("BTC-USD", "1m", 0.05)
    assert again.attrs["source"] == "ib"
    assert client._source("ib").barsubs.requests_sent == 1


# ------------------------------------------------------------- IB's 1100 / 1101 / 1102
def test_1100_until_1102_then_1101(fresh_sim, make_client, warnings_log):
    client = make_client(fresh_sim)
    barsubs = client._source("ib").barsubs
    assert client.ohlcv("ETH-USD", "5m", 0.2).attrs["live"]
    assert client.trading.get_account_value() > 0
    fresh_sim.broadcast_error(1100)
    client.server_time()  # answered after the 1100 on the same socket: it has been read
    assert "1100" in warnings_log.text
    with pytest.raises(ConnectionFailedError, match="1100"):
        client.ohlcv("ETH-USD", "5m", 0.2)
    with pytest.raises(ConnectionFailedError, match="1100"):
        client.trading.get_account_value()
    fresh_sim.broadcast_error(1102)  # restored, data maintained: the same subscription serves
    client.server_time()
    assert client.ohlcv("ETH-USD", "5m", 0.2).attrs["source"] == "ib"
    assert client.trading.get_account_value() > 0
    assert barsubs.requests_sent == 1
    before = fresh_sim.request_counts()
    fresh_sim.broadcast_error(1100)
    fresh_sim.broadcast_error(1101)  # restored, data lost: resubscribe
    client.server_time()
    client._bars.clear()
    assert client.ohlcv("ETH-USD", "5m", 0.2).attrs["source"] == "ib"
    assert barsubs.requests_sent == 2
    client.server_time()
    after = fresh_sim.request_counts()
    assert after["reqAccountUpdates"] == before["reqAccountUpdates"] + 1


# ------------------------------------------------------------------- caches after a drop
def test_a_price_read_before_a_drop_is_not_served_after_it(fresh_sim, make_client):
    client = make_client(fresh_sim, price_ttl=300.0)
    first = client.quote("AAPL")
    assert first.source == "ib" and not first.cached and not first.live
    assert client.quote("AAPL").cached  # within the TTL, from the cache
    back = reconnects(client)
    gone = disconnects(client)
    fresh_sim.drop_connections()
    assert gone.wait(10)
    after = client.quote("AAPL")  # not the pre-drop value: asked again
    assert not after.cached and after.time > first.time
    assert back.wait(10)
    assert after.age() >= 0 and after.time.tzinfo is timezone.utc


def test_fallback_warns_once_per_symbol_and_outage(fresh_sim, make_client, yahoo, warnings_log):
    client = make_client(fresh_sim, sources="ib,yfinance", price_ttl=0.001)
    assert client.quote("AAPL").source == "ib"
    gone = disconnects(client)
    fresh_sim.set_refuse_new(True)
    fresh_sim.drop_connections()
    assert gone.wait(10)
    for _ in range(3):
        got = client.quote("AAPL")
        assert got.source == "yfinance"
    client.ohlcv("AAPL", "1h", 1)
    client.quote("MSFT")
    fallbacks = [r for r in warnings_log.records if "answered by yfinance" in r.getMessage()]
    assert [r.getMessage().split(":")[0] for r in fallbacks] == ["price of AAPL", "price of MSFT"]
    # IB comes back and answers: the outage is over; the next drop is a new one
    back = reconnects(client)
    fresh_sim.set_refuse_new(False)
    assert back.wait(40)
    assert client.quote("AAPL", source="ib").source == "ib"
    assert client.quote("AAPL").source == "ib"
    gone = disconnects(client)
    fresh_sim.set_refuse_new(True)
    fresh_sim.drop_connections()
    assert gone.wait(10)
    assert client.quote("AAPL").source == "yfinance"
    again = [r for r in warnings_log.records if "answered by yfinance" in r.getMessage()]
    assert len(again) == len(fallbacks) + 1


def test_yfinance_logs_are_quiet_while_it_is_a_fallback(fresh_sim, make_client, mocker, caplog):
    import yfinance

    class NoisyTicker(FakeTicker):
        def __init__(self, ticker: str) -> None:
            super().__init__(ticker)
            logging.getLogger("yfinance").error("%s: possibly delisted", ticker)

    mocker.patch.object(yfinance, "Ticker", side_effect=NoisyTicker)
    caplog.set_level(logging.WARNING)
    fresh_sim.set_refuse_new(True)
    client = make_client(fresh_sim, sources="ib,yfinance")
    assert client.price("AAPL") > 0
    assert not [r for r in caplog.records if r.name == "yfinance"]
    # The user's own yfinance calls (outside this package's source) keep their logs.
    NoisyTicker("MSFT")
    assert [r for r in caplog.records if r.name == "yfinance"]


# -------------------------------------------------------- only the error hierarchy
def test_client_methods_raise_only_package_errors_through_drops(fresh_sim, make_client):
    client = make_client(fresh_sim, timeout=3)
    trader = client.trading
    limit = round(client.price("AAPL") * 0.5, 2)
    raised: list[BaseException] = []
    stop = threading.Event()

    def hammer() -> None:
        calls = [
            lambda: trader.place_order("AAPL", "BUY", 1, "LMT", limit_price=limit),
            trader.get_open_orders,
            lambda: trader.get_position("AAPL"),
            trader.cancel_all,
        ]
        k = 0
        while not stop.is_set():
            try:
                calls[k % len(calls)]()
            except Exception as exc:  # noqa: BLE001 - collected and checked below
                raised.append(exc)
            k += 1

    workers = [threading.Thread(target=hammer) for _ in range(3)]
    for w in workers:
        w.start()
    try:
        for _ in range(4):
            back = reconnects(client)
            fresh_sim.drop_connections()
            assert back.wait(15)
    finally:
        stop.set()
        for w in workers:
            w.join(30)
    strays = [e for e in raised if not isinstance(e, IBNiceFuncsError)]
    assert strays == [], strays[:3]


# ------------------------------------------------------------------------ leftovers
def test_timed_out_snapshots_leave_nothing_in_ib_async(fresh_sim, make_client):
    client = make_client(fresh_sim)
    client.price("AAPL")  # connected, the contract qualified and cached
    client._prices.clear()
    client._source("ib").tickers.repeat_window = 0.0  # snapshots only, no live ticker

    async def tables():
        ib = await client.gateway.ib_async()
        w = ib.wrapper
        return len(w.reqId2Ticker), len(w._futures), len(w.ticker2ReqId["snapshot"])

    before = client.gateway.call(tables, 5, "tables")
    fresh_sim.set_latency(0.3)
    for _ in range(10):
        with pytest.raises(RequestTimeoutError):
            client.price("AAPL", source="ib", timeout=0.05)
    fresh_sim.set_latency(0.0)
    client.server_time()  # answered after every late snapshot answer
    assert client.gateway.call(tables, 5, "tables") == before


def test_loop_stop_cancels_the_tasks_left_instead_of_destroying_them():
    """A bar subscription still opening for a timed-out caller must not be destroyed pending."""
    import asyncio

    from ib_nice_funcs._loop import LoopThread

    thread = LoopThread("test-stop-loop")
    started = threading.Event()
    left: dict[str, asyncio.Task] = {}

    async def spawn() -> None:
        async def waits_forever() -> None:
            started.set()
            await asyncio.Event().wait()

        left["task"] = asyncio.get_running_loop().create_task(waits_forever())

    thread.run(spawn, 5)
    assert started.wait(5)
    thread.stop()
    assert left["task"].cancelled()


def test_token_price_after_a_drop_is_not_the_price_before_it(fresh_sim, new_client_id):
    import ib_nice_funcs as n

    n.configure(host="127.0.0.1", port=fresh_sim.port, client_id=new_client_id(), sources="ib",
                price_ttl=300.0, timeout=10, clock=fresh_sim.market.clock)
    fresh_sim.set_price("AAPL", 150.0)
    assert n.token_price("AAPL") == 150.0
    assert n.token_price("AAPL") == 150.0
    client = n.default_client()
    back = reconnects(client)
    gone = disconnects(client)
    fresh_sim.drop_connections()
    fresh_sim.set_price("AAPL", 140.0)  # the drop came with a move
    assert gone.wait(10)
    assert back.wait(10)
    assert n.token_price("AAPL") == 140.0
