"""Orders over the Client Portal: questions, idempotent cOIDs, cancels, the live guard."""

from __future__ import annotations

import threading
import time

import pytest

from ib_nice_funcs.errors import ConnectionFailedError, LiveTradingDisabledError
from ib_nice_funcs.portal.orders import OrderDesk
from ib_nice_funcs.symbols import parse_symbol

from .conftest import no_429, open_source, portal_sim

TWS_KEYS = {"success", "order_id", "client_order_id", "status", "filled_qty", "avg_price", "error"}
AAPL, BTC = parse_symbol("AAPL"), parse_symbol("BTC-USD")


@pytest.fixture(scope="module")
def desk_cp():
    with portal_sim(seed=11) as handle:
        handle.set_price("BTC", 50_000.0)
        handle.set_price("AAPL", 100.0)
        yield handle


@pytest.fixture(scope="module")
def desk(desk_cp):
    """One source for the module: its live-orders answer (1 request per 5 s) is shared."""
    with open_source(desk_cp) as src:
        yield src


def test_crypto_market_order_confirms_its_question_and_fills(desk_cp, desk):
    result = desk.place_order(BTC, "BUY", 0.01, client_order_id="mkt-1")
    assert TWS_KEYS <= set(result)
    assert result["success"] and result["error"] is None
    assert result["status"] == "Filled" and result["filled_qty"] == pytest.approx(0.01)
    assert result["avg_price"] == pytest.approx(50_000.0, rel=0.01)
    assert result["client_order_id"] == "mkt-1" and isinstance(result["order_id"], int)
    assert result["questions"] == ["o10288"]
    no_429(desk_cp)


def test_a_second_question_is_confirmed_too(desk_cp, desk):
    # 3% away from the last price and over the 500-share size limit: two questions in a row.
    replies = desk_cp.request_counts()["POST /iserver/reply/{reply_id}"]
    result = desk.place_order(AAPL, "BUY", 600, "LMT", limit_price=90.0, client_order_id="lmt-2q")
    assert result["success"], result
    assert result["questions"] == ["o163", "o383"]
    assert desk_cp.request_counts()["POST /iserver/reply/{reply_id}"] == replies + 2
    assert result["status"] in ("Submitted", "PreSubmitted")


def test_the_question_loop_is_bounded(desk_cp, desk):
    placed = desk_cp.order_count
    bounded = OrderDesk(desk.client, max_confirmations=1)
    result = bounded.place(AAPL, "BUY", 600, "LMT", limit_price=90.0,
                           client_order_id="lmt-bounded", deadline=time.monotonic() + 10,
                           check_existing=False)
    assert not result["success"] and result["status"] == "NotPlaced"
    assert "more than 1 questions" in result["error"]
    assert desk_cp.order_count == placed


def test_a_declined_question_places_nothing(desk_cp, desk):
    placed = desk_cp.order_count
    asked = []
    picky = OrderDesk(desk.client, confirm=lambda ids, texts: asked.extend(ids) or False)
    result = picky.place(AAPL, "SELL", 1, "LMT", limit_price=120.0, client_order_id="declined",
                         deadline=time.monotonic() + 10, check_existing=False)
    assert asked == ["o163"]
    assert not result["success"] and "declined" in result["error"]
    assert desk_cp.order_count == placed


def test_the_same_client_order_id_is_never_placed_twice(desk_cp, desk):
    first = desk.place_order(AAPL, "BUY", 1, "LMT", limit_price=99.0, client_order_id="dup-1")
    placed = desk_cp.order_count
    again = desk.place_order(AAPL, "BUY", 1, "LMT", limit_price=99.0, client_order_id="dup-1")
    assert again["existing"] and again["order_id"] == first["order_id"] and again["success"]
    assert desk_cp.order_count == placed
    found = desk.find_order("dup-1", timeout=10)
    assert found is not None and found["order_id"] == first["order_id"]


def test_the_gateways_duplicate_refusal_returns_the_existing_order(fresh_cp):
    with open_source(fresh_cp) as one:
        first = one.orders.place(AAPL, "BUY", 1, "LMT", limit_price=99.0, client_order_id="r-1",
                                 deadline=time.monotonic() + 10, check_existing=False)
        assert first["success"]
    # A restarted agent that skips the look-up still cannot place it twice.
    with open_source(fresh_cp) as two:
        again = two.orders.place(AAPL, "BUY", 1, "LMT", limit_price=99.0, client_order_id="r-1",
                                 deadline=time.monotonic() + 10, check_existing=False)
    assert again["success"] and again["existing"] and again["order_id"] == first["order_id"]
    assert fresh_cp.order_count == 1


def test_open_orders_find_and_cancel(desk_cp, desk):
    resting = desk.place_order(AAPL, "BUY", 2, "LMT", limit_price=98.0, client_order_id="c-1")
    other = desk.place_order(AAPL, "BUY", 3, "LMT", limit_price=98.5, client_order_id="c-2")
    rows = {r["client_order_id"]: r for r in desk.open_orders(timeout=10)}
    assert rows["c-1"]["order_id"] == resting["order_id"] and rows["c-1"]["quantity"] == 2
    assert rows["c-1"]["limit_price"] == 98.0 and rows["c-1"]["side"] == "BUY"
    assert "mkt-1" not in rows  # filled: not open
    cancelled = desk.cancel_order(resting["order_id"], timeout=10)
    assert cancelled["success"] and cancelled["status"] == "Cancelled"
    again = desk.cancel_order(resting["order_id"], timeout=10)
    assert not again["success"] and "not active" in again["error"]
    by_coid = desk.cancel_order("c-2", timeout=10)
    assert by_coid["success"] and by_coid["order_id"] == other["order_id"]


def test_unknown_client_order_ids(fresh_cp, fresh_source):
    assert fresh_source.find_order("never-placed", timeout=10) is None
    result = fresh_source.cancel_order("never-placed", timeout=10)
    assert not result["success"] and result["status"] == "NotFound"
    assert fresh_cp.request_counts()["GET /iserver/account/orders"] == 1  # 1 per 5 s: reused


def test_concurrent_submissions_are_serialised(desk_cp, desk):
    results: dict[int, dict] = {}

    def place(i: int) -> None:
        results[i] = desk.place_order(AAPL, "BUY", 1, "LMT", limit_price=90.0 - i,
                                      client_order_id=f"conc-{i}", timeout=20)

    threads = [threading.Thread(target=place, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 4
    assert all(r["success"] for r in results.values()), results  # no stale reply ids
    assert len({r["order_id"] for r in results.values()}) == 4
    no_429(desk_cp)


def test_a_malformed_order_is_a_rejection_not_an_exception(desk_cp, desk):
    result = desk.place_order(AAPL, "BUY", 1, "LMT", limit_price=99.0, tif="FOK",
                              client_order_id="bad-tif")
    assert not result["success"] and result["status"] == "Rejected"
    assert "tif" in result["error"]


def test_an_order_post_is_never_retried(fresh_cp):
    with open_source(fresh_cp) as src:
        src.prices([AAPL], timeout=10)  # session and conid ready
        fresh_cp.set_drop(True)
        with pytest.raises(ConnectionFailedError):
            src.orders.place(AAPL, "BUY", 1, "LMT", limit_price=99.0, client_order_id="once",
                             deadline=time.monotonic() + 10, check_existing=False)
        fresh_cp.set_drop(False)
    assert fresh_cp.request_counts()["POST /iserver/account/{acct}/orders"] == 1


def test_a_live_account_is_refused_without_allow_live():
    with portal_sim(seed=12, account="U7654321", questions=False) as live:
        with open_source(live) as src:
            assert src.is_paper(timeout=10) is False
            with pytest.raises(LiveTradingDisabledError, match="live"):
                src.place_order(BTC, "BUY", 0.01, client_order_id="live-1")
            assert live.order_count == 0
        with open_source(live, allow_live=True) as src:
            assert src.place_order(BTC, "BUY", 0.01, client_order_id="live-2")["success"]
