"""The line policy as pure functions: who streams, who snapshots, which line goes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ib_nice_funcs.streaming._line_plan import (
    asked_lately,
    eviction_candidate,
    expired_asks,
    free_lines,
    has_free_line,
    idle_lines,
    plan_prices,
    quote_is_fresh,
    to_ask_fleet,
)
from ib_nice_funcs.streaming._lines import Line, LiveQuote
from ib_nice_funcs.symbols import parse_symbol

NOW = 10_000.0
WINDOW = 300.0
STALE = 10.0
POOL = ["AAPL", "MSFT", "SPY", "EUR.USD", "BTC", "QQQ"]
INSTRUMENTS = {s: parse_symbol(s) for s in POOL}
BY_SYMBOL = {i.symbol: i for i in INSTRUMENTS.values()}


def _line(symbol: str, *, pins: int = 0, remote: bool = False, last_used: float = 0.0,
          quote: LiveQuote | None = None) -> Line:
    line = Line(INSTRUMENTS[symbol], f"contract of {symbol}")  # type: ignore[arg-type]
    line.pins, line.remote, line.last_used, line.quote = pins, remote, last_used, quote
    return line


def _plan(symbols, live=(), *, asked=None, fleet_asked=(), penalty=None, room=10,
          link_current=True):
    items = [(INSTRUMENTS[s], f"contract of {s}") for s in symbols]
    return plan_prices(
        items, {line.key: line for line in live}, asked=asked or {}, fleet_asked=set(fleet_asked),
        penalty=penalty or {}, room=room, now=NOW, stale_after=STALE, repeat_window=WINDOW,
        link_current=link_current)


def _symbols(items):
    return [instrument.symbol for instrument, _ in items]


# -- examples -------------------------------------------------------------------------


def test_a_first_ask_is_a_snapshot_and_a_repeat_within_the_window_streams():
    key = INSTRUMENTS["AAPL"].key
    assert _symbols(_plan(["AAPL"])[2]) == ["AAPL"]
    assert _symbols(_plan(["AAPL"], asked={key: NOW - WINDOW})[1]) == ["AAPL"]
    values, promote, snap = _plan(["AAPL"], asked={key: NOW - WINDOW - 0.001})
    assert (values, promote, _symbols(snap)) == ({}, [], ["AAPL"])


def test_the_same_symbol_twice_in_one_request_is_a_repeat():
    values, promote, snap = _plan(["AAPL", "AAPL"])
    assert (_symbols(promote), _symbols(snap)) == (["AAPL"], ["AAPL"])


def test_a_symbol_the_fleet_asked_streams_on_its_first_ask_here():
    _, promote, snap = _plan(["AAPL", "MSFT"], fleet_asked=[INSTRUMENTS["MSFT"].key])
    assert (_symbols(promote), _symbols(snap)) == (["MSFT"], ["AAPL"])


def test_a_penalty_or_a_full_budget_keeps_a_repeat_on_snapshots():
    key = INSTRUMENTS["AAPL"].key
    asked = {key: NOW - 1}
    assert _symbols(_plan(["AAPL"], asked=asked, penalty={key: NOW + 1})[2]) == ["AAPL"]
    assert _symbols(_plan(["AAPL"], asked=asked, penalty={key: NOW})[1]) == ["AAPL"]
    assert _symbols(_plan(["AAPL"], asked=asked, room=0)[2]) == ["AAPL"]


def test_a_live_symbol_is_answered_only_from_a_fresh_tick_on_a_current_link():
    fresh = _line("AAPL", quote=LiveQuote(187.5, NOW - STALE, 1.0))
    stale = _line("MSFT", quote=LiveQuote(410.0, NOW - STALE - 0.001, 1.0))
    waiting = _line("SPY")
    values, promote, snap = _plan(["AAPL", "MSFT", "SPY"], [fresh, stale, waiting])
    assert (values, promote, _symbols(snap)) == ({"AAPL": 187.5}, [], ["MSFT", "SPY"])
    values, _, snap = _plan(["AAPL"], [fresh], link_current=False)
    assert (values, _symbols(snap)) == ({}, ["AAPL"])


def test_eviction_takes_the_least_recently_read_own_unpinned_line():
    lines = [_line("AAPL", last_used=5.0), _line("MSFT", last_used=1.0, pins=1),
             _line("SPY", last_used=0.5, remote=True), _line("QQQ", last_used=3.0)]
    assert eviction_candidate(lines) is lines[3]
    assert eviction_candidate(lines[1:3]) is None
    assert has_free_line(lines, 4) and not has_free_line(lines, 3)  # the remote one is free
    assert free_lines(lines, 3) == 3 - 3 + 2


def test_sweeps():
    lines = [_line("AAPL", last_used=NOW - 601), _line("MSFT", last_used=NOW - 601, pins=1),
             _line("SPY", last_used=NOW - 599), _line("QQQ")]  # QQQ: never read
    assert idle_lines(lines, NOW, 600.0) == [lines[0], lines[3]]
    asked = {"old": NOW - WINDOW - 1, "edge": NOW - WINDOW, "new": NOW}
    assert expired_asks(asked, NOW, WINDOW) == ["old"]
    assert to_ask_fleet(["old", "edge", "never"], asked, NOW, WINDOW) == ["old", "never"]
    assert asked_lately(None, NOW, WINDOW) is False
    assert quote_is_fresh(None, NOW, STALE) is False


# -- properties ---------------------------------------------------------------------

ages = st.one_of(st.none(), st.floats(0, 2 * WINDOW))


@st.composite
def requests(draw):
    symbols = draw(st.lists(st.sampled_from(POOL), max_size=12))
    live_symbols = draw(st.sets(st.sampled_from(POOL)))
    live = []
    for s in sorted(live_symbols):
        age = draw(st.one_of(st.none(), st.floats(0, 2 * STALE)))
        live.append(_line(s, quote=None if age is None else LiveQuote(1.0 + len(s), NOW - age, 0)))
    asked = {INSTRUMENTS[s].key: NOW - a for s in POOL if (a := draw(ages)) is not None}
    fleet = {INSTRUMENTS[s].key for s in draw(st.sets(st.sampled_from(POOL)))}
    penalty = {INSTRUMENTS[s].key: NOW + draw(st.floats(-60, 60))
               for s in draw(st.sets(st.sampled_from(POOL)))}
    room = draw(st.integers(-2, 8))
    link = draw(st.booleans())
    return symbols, live, asked, fleet, penalty, room, link


@given(requests())
def test_every_symbol_is_answered_streamed_or_snapshotted_within_the_budget(request):
    symbols, live, asked, fleet, penalty, room, link = request
    values, promote, snap = _plan(symbols, live, asked=asked, fleet_asked=fleet,
                                  penalty=penalty, room=room, link_current=link)
    by_key = {line.key: line for line in live}
    answered = [INSTRUMENTS[s].symbol for s in symbols if INSTRUMENTS[s].key in by_key
                and link and quote_is_fresh(by_key[INSTRUMENTS[s].key].quote, NOW, STALE)]
    assert set(values) == set(answered)
    assert len(answered) + len(promote) + len(snap) == len(symbols)
    assert len(promote) <= max(room, 0)
    for symbol, price in values.items():
        assert price == by_key[BY_SYMBOL[symbol].key].quote.price
    for instrument, _ in promote:
        assert instrument.key not in by_key
        assert penalty.get(instrument.key, 0.0) <= NOW
    # A new repeat with no penalty goes on a snapshot only when the room ran out.
    held_back = [i for i, _ in snap if i.key not in by_key and penalty.get(i.key, 0.0) <= NOW
                 and (asked_lately(asked.get(i.key), NOW, WINDOW) or i.key in fleet)]
    if held_back:
        assert len(promote) == max(room, 0)


line_specs = st.lists(st.tuples(st.sampled_from(POOL), st.integers(0, 2), st.booleans(),
                                st.floats(0, 1000)), max_size=8, unique_by=lambda t: t[0])


@given(line_specs, st.integers(0, 10))
def test_a_line_is_free_exactly_when_one_is_unused_or_can_be_evicted(specs, max_lines):
    lines = [_line(s, pins=p, remote=r, last_used=u) for s, p, r, u in specs]
    own = [line for line in lines if not line.remote]
    candidate = eviction_candidate(lines)
    unpinned = [line for line in own if line.pins <= 0]
    if candidate is None:
        assert unpinned == []
    else:
        assert candidate in unpinned
        assert candidate.last_used == min(line.last_used for line in unpinned)
    assert free_lines(lines, max_lines) == max_lines - len(own) + len(unpinned)
    if len(own) <= max_lines:
        assert (free_lines(lines, max_lines) > 0) == (
            has_free_line(lines, max_lines) or candidate is not None)


@given(line_specs, st.floats(0, 2000), st.floats(0, 1000))
def test_idle_lines_are_unpinned_and_unread_for_longer_than_the_limit(specs, now, idle_after):
    lines = [_line(s, pins=p, remote=r, last_used=u) for s, p, r, u in specs]
    idle = idle_lines(lines, now, idle_after)
    for line in lines:
        expected = line.pins <= 0 and now - line.last_used > idle_after
        assert (line in idle) == expected
