"""Long bar downloads against the TWS simulator: work ends with the call.

Each test has a simulator of its own (``fresh_sim``), hence a pacing budget
of its own (budgets are per gateway address).
"""

from __future__ import annotations

import gc
import logging
from datetime import datetime, timedelta, timezone

import pytest

from ib_nice_funcs import Client
from ib_nice_funcs.errors import PacingViolationError, RequestTimeoutError
from ib_nice_funcs.sim import PacingRules
from ib_nice_funcs.symbols import parse_symbol
from ib_nice_funcs.timeframes import parse_timeframe


def historical_sent(sim) -> int:
    return sim.request_counts().get("reqHistoricalData", 0)


@pytest.fixture
def fresh_client(fresh_sim, new_client_id):
    with Client(host="127.0.0.1", port=fresh_sim.port, client_id=new_client_id(), sources="ib",
                timeout=15, clock=fresh_sim.market.clock) as c:
        yield c


def test_days_back_above_the_bound_sends_nothing(fresh_client, fresh_sim):
    with pytest.raises(ValueError, match="maximum of 420 days for 1m"):
        fresh_client.ohlcv("BTC-USD", "1m", 700_000)
    assert fresh_sim.request_counts() == {}


def test_a_plan_the_deadline_cannot_hold_is_refused_unsent(fresh_client, fresh_sim):
    fresh_client.price("BTC-USD")  # connected, contract known
    before = historical_sent(fresh_sim)
    # 98 days of 5m bars: 15 requests; at 5 per 2 s the last may go after ~4 s.
    with pytest.raises(PacingViolationError, match="nothing was sent"):
        fresh_client.ohlcv("BTC-USD", "5m", 98, timeout=2)
    assert historical_sent(fresh_sim) == before
    assert len(fresh_client.source("ib").pacing) == 0


def test_a_timed_out_download_sends_no_more_and_gives_its_slots_back(fresh_client, fresh_sim):
    source = fresh_client.source("ib")
    instrument = parse_symbol("BTC-USD")
    tf = parse_timeframe("5m")
    end = datetime.fromtimestamp(fresh_sim.market.now(), timezone.utc)
    start = end - timedelta(days=98)  # 15 requests: bursts at 0, ~2 s, ~4 s
    gateway = fresh_client.gateway
    (contract,) = gateway.call(lambda: gateway.qualify([instrument], "test"), 10, "qualify")
    fresh_sim.set_latency(0.5)  # answers come after the first sends, not before the timeout
    with pytest.raises(RequestTimeoutError):
        gateway.call(lambda: source.fetch_plain(instrument, contract, tf, start, end, "test"),
                     1.0, "test")
    fresh_sim.set_latency(0.0)
    fresh_client.server_time()  # a round trip: every request sent before it has arrived
    sent = historical_sent(fresh_sim)
    assert 1 <= sent <= 5  # the first burst only
    # Nothing booked remains: the budget holds exactly the requests sent ...
    assert len(source.pacing) == sent
    # ... and no task is left to send more.
    pending = gateway.call(_pending_downloads, 5, "tasks")
    assert pending == []
    fresh_client.server_time()
    assert historical_sent(fresh_sim) == sent


async def _pending_downloads() -> list[str]:
    import asyncio

    me = asyncio.current_task()
    return [repr(t) for t in asyncio.all_tasks() if t is not me and "fetch_plain" in repr(t)]


def test_a_timed_out_bar_call_stops_its_subscription_opening(fresh_client, fresh_sim):
    """The "up to now" path (keepUpToDate subscription + older chunks) ends with its caller too."""
    source = fresh_client.source("ib")
    gateway = fresh_client.gateway
    instrument, tf = parse_symbol("BTC-USD"), parse_timeframe("5m")
    end = datetime.fromtimestamp(fresh_sim.market.now(), timezone.utc)
    start = end - timedelta(days=98)  # a subscription and 14 older requests
    fresh_client.price("BTC-USD")
    # No deadline given to the source: the plan is started, and cut by the timeout.
    with pytest.raises(RequestTimeoutError):
        gateway.call(lambda: source.bars_async(instrument, tf, start, end, "test"), 1.0, "test")
    fresh_client.server_time()
    sent = historical_sent(fresh_sim)
    assert 1 <= sent <= 5
    assert len(source.pacing) == sent
    assert gateway.call(_pending_downloads, 5, "tasks") == []
    assert gateway.call(_pending_openings, 5, "tasks") == []
    fresh_client.server_time()
    assert historical_sent(fresh_sim) == sent


async def _pending_openings() -> list[str]:
    import asyncio

    return [repr(t) for t in asyncio.all_tasks() if "_create" in repr(t)]


def test_refused_chunks_stop_the_plan_and_log_no_unretrieved_exception(
        fresh_client, fresh_sim, caplog):
    fresh_client.price("BTC-USD")
    # The gateway allows three requests where our budget expects sixty.
    fresh_sim.set_pacing(PacingRules(max_requests=3, window_s=600))
    caplog.set_level(logging.ERROR, logger="asyncio")
    # 60 days of 5m bars in the past (not "up to now"): 9 plain requests.
    end = datetime.fromtimestamp(fresh_sim.market.now(), timezone.utc) - timedelta(days=1)
    source = fresh_client.source("ib")
    with pytest.raises(PacingViolationError):
        source.bars(parse_symbol("BTC-USD"), parse_timeframe("5m"), end - timedelta(days=60), end,
                    timeout=15)
    fresh_client.server_time()
    assert historical_sent(fresh_sim) <= 6  # stopped after the first refusal was seen
    gc.collect()
    assert "never retrieved" not in caplog.text
    assert "Task was destroyed" not in caplog.text


def test_a_long_download_gets_a_deadline_from_its_plan(fresh_client, fresh_sim):
    fresh_client.settings = fresh_client.settings.replace(timeout=10)
    tf = parse_timeframe("5m")
    end = datetime.now(timezone.utc)
    short = fresh_client.bars_budget(["ib"], tf, end - timedelta(days=3), end, None)
    assert short == 10
    year = fresh_client.bars_budget(["ib"], tf, end - timedelta(days=365), end, None)
    assert year == pytest.approx(10 + 20 * 1.05, abs=1.5)  # ten more bursts of 5 after the first
    assert fresh_client.bars_budget(["ib"], tf, end - timedelta(days=365), end, 3) == 3
    # With a fallback behind it, IB still gets its whole estimate.
    both = fresh_client.bars_budget(["ib", "yfinance"], tf, end - timedelta(days=365), end, None)
    assert both > year


def test_a_plan_longer_than_the_setting_is_served_without_a_timeout(fresh_client):
    # 180 days of 1h bars: 6 requests, the 6th only after ~2 s of pacing.
    fresh_client.settings = fresh_client.settings.replace(timeout=1)
    with pytest.raises(PacingViolationError, match="nothing was sent"):
        fresh_client.ohlcv("BTC-USD", "1h", 180, timeout=1)
    frame = fresh_client.ohlcv("BTC-USD", "1h", 180)  # deadline from the plan: ~1 + 2.1 s
    assert len(frame) > 179 * 24


def test_progress_is_reported_for_multi_request_downloads(fresh_client):
    seen: list[tuple[str, int, int]] = []
    source = fresh_client.source("ib")
    source.progress_listeners.append(lambda what, done, total: seen.append((what, done, total)))
    fresh_client.ohlcv("BTC-USD", "5m", 20)
    assert seen, "no progress reported"
    assert seen[-1][1] == seen[-1][2]
    assert [d for _, d, _ in seen] == sorted(d for _, d, _ in seen)
