"""Source order, fallback and plug-ins (register_source, modules, install)."""

from __future__ import annotations

import types

import pandas as pd
import pytest

import ib_nice_funcs
from ib_nice_funcs import Client
from ib_nice_funcs.errors import ConnectionFailedError, UnknownSymbolError
from ib_nice_funcs.sources import register_source, registered_sources, unregister_source


class FakeSource:
    """A plug-in source (the public plug-in interface, not a mock of our code)."""

    def __init__(self, name, price=None, fail=None):
        self.name, self._price, self._fail, self.calls = name, price, fail, 0

    def prices(self, instruments, *, timeout):
        self.calls += 1
        if self._fail:
            raise self._fail
        return {i.symbol: self._price for i in instruments}

    def bars(self, instrument, timeframe, start, end, *, timeout):
        self.calls += 1
        if self._fail:
            raise self._fail
        ts = pd.date_range(end=end.replace(microsecond=0), periods=5, freq="h", tz="UTC")
        return pd.DataFrame({"timestamp": ts, "open": 1.0, "high": 2.0, "low": 0.5,
                             "close": 1.5, "volume": 10.0})


@pytest.fixture
def plugin():
    names = []

    def add(name, source, priority=50):
        register_source(name, source, priority)
        names.append(name)
        return source

    yield add
    for name in names:
        unregister_source(name)


def test_registered_source_is_used_in_priority_order(plugin):
    first = plugin("first", FakeSource("first", price=1.25), priority=5)
    client = Client(sources="yfinance")
    assert client.source_order() == ["first", "yfinance"]
    assert client.price("AAPL") == 1.25
    assert first.calls == 1


def test_fallback_to_next_source_on_failure(plugin):
    plugin("broken", FakeSource("broken", fail=ConnectionFailedError("down")), priority=1)
    good = plugin("good", FakeSource("good", price=3.0), priority=2)
    client = Client(sources="yfinance")
    assert client.price("EURUSD") == 3.0 and good.calls == 1
    frame = client.ohlcv("EURUSD", "1h", 1)
    assert frame.attrs["source"] == "good"
    assert list(frame.columns) == ["timestamp", "open", "high", "low", "close", "volume"]


def test_source_argument_picks_one(plugin):
    plugin("only", FakeSource("only", price=7.0))
    client = Client(sources="yfinance")
    assert client.source_order("only") == ["only"]
    assert client.price("AAPL", source="only") == 7.0
    with pytest.raises(ValueError, match="unknown source 'nope'.*valid"):
        client.price("AAPL", source="nope")


def test_all_unknown_raises_unknown_symbol(plugin):
    plugin("empty", FakeSource("empty", price=None))
    client = Client(sources="yfinance")
    with pytest.raises(UnknownSymbolError):
        client.price("AAPL", source="empty")


def test_builtin_names_are_reserved():
    with pytest.raises(ValueError, match="built-in"):
        register_source("ib", FakeSource("ib"))


def test_a_nice_funcs_module_is_a_source(plugin):
    module = types.ModuleType("nice_funcs_fake")
    module.token_price = lambda sym: 42.0
    plugin("fake", module)
    assert "fake" in registered_sources()
    assert Client(sources="yfinance").price("AAPL", source="fake") == 42.0


def test_install_asks_ib_first_and_keeps_the_module_as_fallback(mocker):
    module = types.ModuleType("nice_funcs")
    module.token_price = lambda address: 0.5
    ours = mocker.patch("ib_nice_funcs.nice_funcs.token_price", return_value=None)
    ib_nice_funcs.install(module)
    ib_nice_funcs.install(module)  # twice is harmless
    assert module.token_price("AAPL") == 0.5  # IB gave None -> module's own
    ours.return_value = 187.0
    assert module.token_price("AAPL") == 187.0
    ours.side_effect = ValueError("not a symbol")
    assert module.token_price("So11111111111111111111111111111111111111112") == 0.5


# -- the source interface ----------------------------------------------------------


def test_the_interface_is_exported_as_a_protocol():
    assert isinstance(FakeSource("x"), ib_nice_funcs.DataSource)
    assert not isinstance(object(), ib_nice_funcs.DataSource)


class NoTimeout:
    """A user source written without the timeout keyword."""

    name = "notimeout"

    def prices(self, instruments):
        return {i.symbol: 2.5 for i in instruments}

    def bars(self, instrument, timeframe, start, end):
        return FakeSource("x").bars(instrument, timeframe, start, end, timeout=1)


def test_a_source_without_timeout_is_called_without_one(plugin):
    plugin("notimeout", NoTimeout())
    client = Client(sources="yfinance")
    assert client.price("AAPL", source="notimeout") == 2.5
    assert client.ohlcv("AAPL", "1h", 1, source="notimeout").attrs["source"] == "notimeout"


class NoBars:
    def prices(self, instruments, *, timeout):
        return {}


class WrongPrices:
    def prices(self):
        return {}

    def bars(self, instrument, timeframe, start, end, *, timeout):
        return None


def test_a_wrong_source_is_refused_at_registration_naming_what_is_wrong():
    with pytest.raises(TypeError, match=r"'nobars' has no bars\(\) method.*DataSource"):
        register_source("nobars", NoBars())
    with pytest.raises(TypeError, match=r"'wrong': prices\(self\)|'wrong': prices\(\) cannot"):
        register_source("wrong", WrongPrices())
    assert "nobars" not in registered_sources() and "wrong" not in registered_sources()
