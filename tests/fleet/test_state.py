"""The fleet's I/O-free rules: records survive a round trip; garbage is never trusted."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ib_nice_funcs.fleet.state import (
    Claim,
    Halt,
    Reservation,
    WorkingOrder,
    claim_is_stale,
    decode,
    encode,
    owner_id,
    owner_pid,
    with_working_orders,
)

finite = st.floats(0, 1e12, allow_nan=False)


@given(st.text(min_size=1), finite, st.text())
def test_records_round_trip(by, at, reason):
    assert decode("halt", encode(Halt(by, at, reason))) == Halt(by, at, reason)
    assert decode("claim", encode(Claim(by, at))) == Claim(by, at)
    res = Reservation(by, at, "AAPL", "BUY", at)
    assert decode("reservation", encode(res)) == res
    ended = Reservation(by, at, "AAPL", "SELL", at, until=at + 2)
    assert decode("reservation", encode(ended)) == ended


def test_a_filled_order_stops_counting_after_its_until():
    ended = Reservation("h:1:a", 100.0, "AAPL", "BUY", 500.0, until=102.0)
    assert ended.counts(101.9) and not ended.counts(102.0)
    assert Reservation("h:1:a", 100.0, "AAPL", "BUY", 500.0).counts(1e12)


@given(st.one_of(st.none(), st.text(), st.binary()))
def test_garbage_decodes_to_nothing(text):
    for kind in ("halt", "claim", "reservation", "day_start"):
        assert decode(kind, text) is None


def test_another_format_or_kind_is_ignored():
    text = encode(Halt("h:1:a", 1.0))
    assert decode("claim", text) is None
    assert decode("halt", text.replace("fleet/1", "fleet/2")) is None


def test_owner_names_this_process():
    import os

    assert owner_pid(owner_id()) == os.getpid()
    assert owner_pid("elsewhere:12:abc") is None


def test_a_dead_claimant_or_an_old_claim_is_stale():
    assert claim_is_stale(Claim("x", 100.0), 101.0, owner_alive=False)
    assert not claim_is_stale(Claim("x", 100.0), 101.0, owner_alive=None)
    assert claim_is_stale(Claim("x", 100.0), 1000.0, owner_alive=True)


@given(st.dictionaries(st.sampled_from("ABC"), st.floats(-1e6, 1e6)),
       st.lists(st.builds(WorkingOrder, st.sampled_from("ABC"), st.sampled_from(["BUY", "SELL"]),
                          st.floats(0, 1e6))))
def test_working_orders_never_lower_exposure(positions, working):
    after = with_working_orders(positions, working)
    for symbol, value in positions.items():
        assert abs(after[symbol]) >= abs(value)
    assert sum(map(abs, after.values())) <= sum(map(abs, positions.values())) + sum(
        w.value_usd for w in working) + 1e-6
