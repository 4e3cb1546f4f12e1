"""The Client's data rooms on their own: source order, the bars budget, the lookups as steps.

I/O-free: the steps are driven with plain functions standing in for the
sources (the ``ask`` seam of ``_steps.drive``); caches, notices and the
steps are the real ones.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ib_nice_funcs import pacing, timeframes
from ib_nice_funcs._bar_lookup import bar_steps, paced_budget
from ib_nice_funcs._fallback import FallbackNotices
from ib_nice_funcs._held import HeldCache
from ib_nice_funcs._price_lookup import price_steps
from ib_nice_funcs._steps import PRIMARY_SHARE, Lookup, drive
from ib_nice_funcs.errors import (
    AllSourcesFailedError,
    ConnectionFailedError,
    NoDataError,
    UnknownSymbolError,
)
from ib_nice_funcs.sources import register_source, unregister_source
from ib_nice_funcs.sources.builtin import ib_first, ordered_sources
from ib_nice_funcs.symbols import parse_symbol
from ib_nice_funcs.timeframes import parse_timeframe

END = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
START = END - timedelta(days=1)


def lookup(*order: str, budget: float = 10.0) -> Lookup:
    return Lookup(order, budget, FallbackNotices(), lambda: None, lambda name: None)


def hourly(n: int = 3) -> pd.DataFrame:
    ts = pd.date_range(END - timedelta(hours=n), periods=n, freq="1h")
    return pd.DataFrame({"timestamp": ts, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5,
                         "volume": 10.0})


class Plugin:
    name = "plug"

    def prices(self, instruments, *, timeout):
        return {}

    def bars(self, instrument, timeframe, start, end, *, timeout):
        return hourly()


@pytest.fixture
def plugin():
    register_source("plug", Plugin(), priority=15)
    yield "plug"
    unregister_source("plug")


def test_the_pacing_names_stay_importable_from_timeframes():
    assert timeframes.PacingBudget is pacing.PacingBudget
    assert timeframes.Booking is pacing.Booking


def test_auto_asks_the_configured_sources_by_position_and_plugins_by_priority(plugin):
    assert ordered_sources(("ib", "yfinance"), "auto") == ["ib", "plug", "yfinance"]
    assert ordered_sources(("ib", "yfinance"), " PLUG ") == ["plug"]
    assert ordered_sources(("yfinance",), "portal") == ["portal"]
    assert ib_first(("ib", "yfinance"), "auto")
    register_source("plug", Plugin(), priority=5)  # now above ib (10)
    assert ordered_sources(("ib", "yfinance"), "auto") == ["plug", "ib", "yfinance"]
    assert not ib_first(("ib", "yfinance"), "auto")
    with pytest.raises(ValueError, match="unknown source 'nope'; valid: auto, ib, yfinance, plug"):
        ordered_sources(("ib", "yfinance"), "nope")
    with pytest.raises(TypeError):
        ordered_sources(("ib",), 3)  # type: ignore[arg-type]


def test_ib_is_first_only_when_asked_or_first_of_auto():
    assert ib_first(("yfinance",), "ib")
    assert ib_first(("ib", "yfinance"), "auto")
    assert not ib_first(("yfinance", "ib"), "auto")
    assert not ib_first(("ib",), "yfinance")


@given(setting=st.floats(0.1, 600), wait=st.floats(-5, 600), last=st.booleans())
def test_a_paced_source_gets_its_wait_plus_the_setting(setting, wait, last):
    order = ["yfinance", "ib"] if last else ["ib", "yfinance"]
    budget = paced_budget(order, setting, lambda n: (lambda tf, s, e: wait) if n == "ib" else None,
                          parse_timeframe("5m"), START, END)
    need = wait + setting if last else (wait + setting) / PRIMARY_SHARE
    assert budget == (max(setting, need) if wait > 0 else setting)


def test_bars_fall_back_and_are_then_served_from_the_cache():
    cache: HeldCache[pd.DataFrame] = HeldCache(8, 60)
    asked = []

    def ask(name, instrument, tf, start, end, remaining):
        asked.append((name, remaining))
        if name == "ib":
            raise ConnectionFailedError("down")
        return hourly()

    steps = lambda: bar_steps(lookup("ib", "yfinance"), cache, parse_symbol("AAPL"),  # noqa: E731
                              parse_timeframe("1h"), START, END)
    first = drive(steps(), ask)
    assert first.attrs["source"] == "yfinance" and not first.attrs["cached"]
    assert [n for n, _ in asked] == ["ib", "yfinance"]
    assert asked[0][1] <= 10.0 * PRIMARY_SHARE < asked[1][1]
    again = drive(steps(), ask)  # ib is still down: asked again, yfinance's bars held
    assert again.attrs["cached"] and [n for n, _ in asked] == ["ib", "yfinance", "ib"]
    pd.testing.assert_frame_equal(again, first, check_like=True)


def test_bars_no_source_has_raise_the_shared_kind():
    def ask(name, *_):
        raise NoDataError(f"{name} has none") if name == "ib" else NoDataError("nor this")

    with pytest.raises(NoDataError, match="1h bars of AAPL"):
        drive(bar_steps(lookup("ib", "yfinance"), HeldCache(8, 60), parse_symbol("AAPL"),
                        parse_timeframe("1h"), START, END), ask)
    with pytest.raises(AllSourcesFailedError):
        drive(bar_steps(lookup("ib", budget=0.0), HeldCache(8, 60), parse_symbol("AAPL"),
                        parse_timeframe("1h"), START, END), ask)


class Tick:
    price, time = 7.0, END.timestamp()


class Tickers:
    def fresh_quote(self, key):
        return Tick() if key == parse_symbol("AAPL").key else None


def test_prices_read_live_ticks_then_ask_each_source_for_the_rest():
    asked = []

    def ask(name, todo, remaining):
        asked.append((name, [i.symbol for i in todo]))
        return {"MSFT": 3.0} if name == "ib" else {}

    got = drive(price_steps(lookup("ib", "yfinance"), [parse_symbol(s) for s in
                                                       ("AAPL", "MSFT", "ZZZ", "AAPL")],
                            HeldCache(8, 60), Tickers()), ask)
    assert asked == [("ib", ["MSFT", "ZZZ"]), ("yfinance", ["ZZZ"])]
    assert got["AAPL"][0].live and got["AAPL"][0].price == 7.0
    assert got["MSFT"][0].price == 3.0 and got["MSFT"][0].source == "ib"
    assert got["ZZZ"][0] is None and isinstance(got["ZZZ"][1], UnknownSymbolError)
