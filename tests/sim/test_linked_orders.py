"""Brackets, transmit=False, OCA groups, STP LMT, cashQty and margin in the matching engine."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ib_nice_funcs.sim import PaperMarket
from ib_nice_funcs.sim.matching import MatchingEngine, SimOrder

from .conftest import OPEN_T, StepClock


def _order(engine, oid, action, qty, kind, symbol="AAPL", **kw):
    return SimOrder(order_id=oid, client_id=1, perm_id=0, account="",
                    inst=engine.market.get(symbol), action=action, quantity=qty,
                    order_type=kind, **kw)


@pytest.fixture
def engine(market):
    return MatchingEngine(market, "DU1234567", 1_000_000.0)


def _bracket(engine, last, *, transmit_last=True):
    """Parent BUY 100 LMT at the ask; take profit +5, stop loss -5 (ib_insync's bracketOrder)."""
    q = engine.market.quote("AAPL", OPEN_T)
    parent = _order(engine, 1, "BUY", 100, "LMT", lmt_price=q.ask, transmit=False)
    take = _order(engine, 2, "SELL", 100, "LMT", lmt_price=round(last + 5, 2), parent_id=1,
                  transmit=False)
    stop = _order(engine, 3, "SELL", 100, "STP", aux_price=round(last - 5, 2), parent_id=1,
                  transmit=transmit_last)
    events = []
    for o in (parent, take, stop):
        events += engine.submit(o, OPEN_T)
    return parent, take, stop, events


def test_transmit_false_holds_the_order_until_its_bracket_is_transmitted(engine, market):
    q = market.quote("AAPL", OPEN_T)
    parent, take, stop, events = _bracket(engine, q.last, transmit_last=False)
    assert not [e for e in events if e.kind in ("fill", "error")]
    assert parent.is_open and parent.filled == 0 and engine.positions == {}
    # Re-sending the last child with transmit=True sends the whole bracket.
    again = _order(engine, 3, "SELL", 100, "STP", aux_price=stop.aux_price, parent_id=1)
    events = engine.submit(again, OPEN_T)
    assert [e.order.order_id for e in events if e.kind == "fill"] == [1]
    assert parent.status == "Filled" and take.status == "Submitted" and stop.status == "Submitted"


def test_bracket_children_protect_the_position_and_cancel_each_other(engine, market):
    q = market.quote("AAPL", OPEN_T)
    parent, take, stop, events = _bracket(engine, q.last)
    assert parent.status == "Filled" and engine.positions[parent.inst.con_id].quantity == 100
    assert take.is_open and stop.is_open and take.parent_id == 1
    market.set_price("AAPL", stop.aux_price - 0.5)
    events = engine.on_time(OPEN_T + 1)
    assert stop.status == "Filled" and take.status == "Cancelled"
    assert engine.positions[parent.inst.con_id].quantity == 0
    assert [e.code for e in events if e.kind == "error"] == [202]


def test_children_wait_for_the_parent_and_die_with_it(engine, market):
    q = market.quote("AAPL", OPEN_T)
    parent = _order(engine, 1, "BUY", 100, "LMT", lmt_price=round(q.last - 20, 2),
                    transmit=False)
    # A marketable take-profit: it would fill at once if it did not wait for its parent.
    child = _order(engine, 2, "SELL", 100, "LMT", lmt_price=round(q.last - 10, 2), parent_id=1)
    engine.submit(parent, OPEN_T)
    engine.submit(child, OPEN_T)
    assert parent.status == "Submitted" and child.status == "PreSubmitted"
    engine.on_time(OPEN_T + 1)
    assert child.filled == 0
    events = engine.cancel(1, 1, OPEN_T + 2)
    assert child.status == "Cancelled" and [e.code for e in events if e.kind == "error"] == [202,
                                                                                             202]
    orphan = _order(engine, 5, "SELL", 1, "LMT", lmt_price=500.0, parent_id=99)
    assert engine.submit(orphan, OPEN_T)[0].code == 201


def test_oca_group_lets_only_one_sibling_fill(engine, market):
    q = market.quote("AAPL", OPEN_T)
    a = _order(engine, 1, "BUY", 10, "LMT", lmt_price=round(q.last - 1, 2), oca_group="g",
               oca_type=1)
    b = _order(engine, 2, "BUY", 10, "LMT", lmt_price=round(q.last - 2, 2), oca_group="g",
               oca_type=1)
    engine.submit(a, OPEN_T)
    engine.submit(b, OPEN_T)
    market.set_price("AAPL", q.last - 5)  # both limits are now marketable
    engine.on_time(OPEN_T + 1)
    assert sorted((a.status, b.status)) == ["Cancelled", "Filled"]
    assert engine.positions[a.inst.con_id].quantity == 10


def test_stop_limit_triggers_then_rests_as_a_limit(engine, market):
    q = market.quote("AAPL", OPEN_T)
    stop = round(q.last - 2, 2)
    o = _order(engine, 1, "SELL", 10, "STP LMT", aux_price=stop, lmt_price=round(stop - 1, 2))
    engine.submit(o, OPEN_T)
    assert o.status == "Submitted" and o.filled == 0
    market.set_price("AAPL", stop - 3)  # gapped through the limit: triggered, not filled
    engine.on_time(OPEN_T + 1)
    assert o.filled == 0 and o.extra.get("_triggered")
    market.set_price("AAPL", stop - 0.5)
    engine.on_time(OPEN_T + 2)
    assert o.status == "Filled" and o.avg_fill_price >= o.lmt_price


def test_cash_quantity_buys_what_the_cash_pays_for(engine, market):
    q = market.quote("BTC", OPEN_T)
    o = _order(engine, 1, "BUY", 0.0, "MKT", symbol="BTC", extra={"cashQty": 1000.0})
    events = engine.submit(o, OPEN_T)
    assert o.status == "Filled" and 0 < o.quantity * q.ask <= 1000.0
    assert [e for e in events if e.kind == "fill"]


def test_short_sale_needs_margin_and_a_cover_does_not(market):
    engine = MatchingEngine(market, "DU1", 1_000_000.0)
    events = engine.submit(_order(engine, 1, "SELL", 50_000, "MKT"), OPEN_T)  # ~$9M short
    assert events[0].code == 201 and "INITIAL MARGIN" in events[0].message
    assert engine.values(OPEN_T)["AvailableFunds"] > 0 and engine.positions == {}
    engine.submit(_order(engine, 2, "SELL", 10_000, "MKT"), OPEN_T)  # ~$1.8M short: fits
    assert engine.positions[265598].quantity == -10_000
    # Covering needs no buying power, even when the account has little left.
    events = engine.submit(_order(engine, 3, "BUY", 10_000, "MKT"), OPEN_T)
    assert [e for e in events if e.kind == "fill"]


@settings(max_examples=60, deadline=None)
@given(qty=st.integers(1, 80_000), side=st.sampled_from(["BUY", "SELL"]))
def test_no_fill_ever_leaves_available_funds_negative(qty, side):
    market = PaperMarket(seed=1, clock=StepClock(OPEN_T))
    engine = MatchingEngine(market, "DU1", 1_000_000.0)
    engine.submit(_order(engine, 1, side, qty, "MKT"), OPEN_T)
    assert engine.values(OPEN_T)["AvailableFunds"] >= -1e-6


def test_cancel_all_cancels_each_order_once(engine, market):
    q = market.quote("AAPL", OPEN_T)
    parent = _order(engine, 1, "BUY", 10, "LMT", lmt_price=round(q.last - 20, 2),
                    transmit=False)
    child = _order(engine, 2, "SELL", 10, "STP", aux_price=round(q.last - 30, 2), parent_id=1)
    engine.submit(parent, OPEN_T)
    engine.submit(child, OPEN_T)
    events = engine.cancel_all(OPEN_T + 1)
    cancelled = [e.order.order_id for e in events if e.kind == "error" and e.code == 202]
    assert sorted(cancelled) == [1, 2]
