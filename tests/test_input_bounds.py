"""Bad input is refused as ValueError / TypeError, before anything is sent (issue 8, item 7).

Property tests over the pure validators: no input makes them raise anything
else (OverflowError, decimal.InvalidOperation, AttributeError...), and what
they accept is inside the documented bounds.
"""

from __future__ import annotations

import copy
import json
import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ib_nice_funcs import Client
from ib_nice_funcs.client import MAX_TIMEOUT_S
from ib_nice_funcs.errors import IBNiceFuncsError, NonAsciiSymbolError, PositionUnknownError
from ib_nice_funcs.symbols import parse_symbol
from ib_nice_funcs.trading.positions import Unknown, unknown_position
from ib_nice_funcs.trading.validation import (
    MAX_PRICE,
    MAX_QUANTITY,
    MAX_USD,
    MIN_PRICE,
    MIN_QUANTITY,
    MIN_USD,
    check_usd_at_price,
    validate_order,
    validate_usd_amount,
)

#: Numbers of every kind an agent might pass, including the ones that used to
#: escape as OverflowError or decimal.InvalidOperation.
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**500), max_value=10**500),
    st.fractions(),
    st.sampled_from([1e308, 10**400, -(10**400), Fraction(10**400, 3), 1e-300, 5e-324, True]),
)

# -- symbols ---------------------------------------------------------------------------------


@pytest.mark.parametrize("look_alike", ["ıbm", "ſpy", "ﬁ", "ＡＡＰＬ", "AAPL\u00a0", "ΑAPL"])
def test_unicode_look_alikes_never_become_other_tickers(look_alike):
    with pytest.raises(ValueError) as err:
        parse_symbol(look_alike)
    assert isinstance(err.value, NonAsciiSymbolError) and "ASCII" in str(err.value)


@given(st.text(min_size=1, max_size=12).filter(lambda t: not t.isascii()))
def test_non_ascii_text_is_always_refused(text):
    with pytest.raises(NonAsciiSymbolError):
        parse_symbol(text)


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=20))
def test_ascii_text_parses_to_an_ascii_symbol_or_raises_value_error(text):
    try:
        inst = parse_symbol(text)
    except ValueError as exc:
        assert not isinstance(exc, NonAsciiSymbolError)
        return
    assert inst.symbol.isascii() and inst.ib_symbol.isascii()


class _Duck:
    def __init__(self, **fields):
        self.__dict__.update(fields)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        (dict(symbol=123, secType="STK"), TypeError),
        (dict(symbol="AAPL", secType=None), ValueError),
        (dict(symbol="AAPL", secType=""), ValueError),
        (dict(symbol="ıbm", secType="STK"), ValueError),
        (dict(symbol="AAPL", secType="STK", currency=5), TypeError),
        (dict(symbol="AAPL", secType="STK", conId="7"), TypeError),
        (dict(symbol="AAPL", secType="STK", conId=-1), TypeError),
        (dict(symbol="ES", secType="FUT", strike=float("nan")), ValueError),
        (dict(symbol="", secType="STK"), ValueError),
    ],
)
def test_contract_like_objects_are_checked_field_by_field(fields, error):
    with pytest.raises(error):
        parse_symbol(_Duck(**fields))
    with pytest.raises(error):
        validate_order(_Duck(**fields), "BUY", 1)


def test_numeric_multiplier_and_expiry_are_accepted():
    inst = parse_symbol(_Duck(symbol="ES", secType="FUT", multiplier=50,
                              lastTradeDateOrContractMonth=202412))
    assert (inst.contract.multiplier == "50"
            and inst.contract.lastTradeDateOrContractMonth == "202412")


def test_a_duck_typed_contract_becomes_a_complete_ib_async_contract():
    from ib_async import Contract

    inst = parse_symbol(_Duck(symbol="AAPL", secType="STK"))  # no exchange, conId...
    assert isinstance(inst.contract, Contract) and inst.contract.conId == 0
    assert validate_order(_Duck(symbol="AAPL", secType="STK"), "BUY", 1).symbol.symbol == "AAPL"


# -- numbers ---------------------------------------------------------------------------------


@given(NUMBERS)
def test_quantity_is_bounded_or_a_value_error(qty):
    try:
        req = validate_order("AAPL", "BUY", qty)
    except (ValueError, TypeError):
        return
    assert MIN_QUANTITY <= req.quantity <= MAX_QUANTITY


@given(NUMBERS, st.sampled_from(["limit_price", "stop_price", "trail_amount"]))
def test_prices_are_bounded_or_a_value_error(price, name):
    order_type = {"limit_price": "LMT", "stop_price": "STP", "trail_amount": "TRAIL"}[name]
    try:
        req = validate_order("AAPL", "BUY", 1, order_type, **{name: price})
    except (ValueError, TypeError):
        return
    got = getattr(req, name)
    assert MIN_PRICE <= got <= MAX_PRICE and math.isfinite(got)


@given(NUMBERS)
def test_usd_amounts_are_bounded_or_a_value_error(usd):
    try:
        got = validate_usd_amount(usd)
    except (ValueError, TypeError):
        return
    assert MIN_USD <= got <= MAX_USD


@given(st.floats(MIN_USD, MAX_USD), st.floats(MIN_PRICE, MAX_PRICE))
def test_usd_at_a_price_never_asks_for_more_than_the_maximum_quantity(usd, price):
    try:
        check_usd_at_price(usd, price)
    except ValueError:
        assert usd / price > MAX_QUANTITY
        return
    assert usd / price <= MAX_QUANTITY


def test_the_reported_typos_are_value_errors():
    with pytest.raises(ValueError, match="limit_price"):
        validate_order("AAPL", "BUY", 1, "LMT", limit_price=1e-300)
    for qty in (1e308, 10**400, float("inf")):
        with pytest.raises(ValueError, match="quantity"):
            validate_order("AAPL", "BUY", qty)
    with pytest.raises(ValueError):
        check_usd_at_price(1e7, 1e-3)


@given(st.one_of(NUMBERS, st.none()))
def test_timeouts_are_finite_positive_and_bounded(timeout):
    with Client(host="127.0.0.1", port=1, sources="ib") as client:  # connects only when used
        try:
            got = client.resolve_timeout(timeout)
        except (ValueError, TypeError):
            assert timeout is not None
            return
    assert 0 < got <= MAX_TIMEOUT_S and math.isfinite(got)


def test_infinite_and_boolean_timeouts_are_value_errors():
    with Client(host="127.0.0.1", port=1, sources="ib") as client:
        for bad in (float("inf"), float("nan"), 0, -1, True, MAX_TIMEOUT_S + 1):
            with pytest.raises(ValueError, match="timeout"):
                client.resolve_timeout(bad)


# -- an unknown position is neither flat nor held ---------------------------------------------


def test_unknown_position_cannot_be_read_as_flat_or_held():
    pos = unknown_position("AAPL", "the gateway is down")
    assert pos["known"] is False and pos["status"] == "unknown" and pos["symbol"] == "AAPL"
    with pytest.raises(PositionUnknownError, match="the gateway is down"):
        if not pos["has_position"]:  # the agent idiom that used to buy twice
            pytest.fail("read as flat")
    with pytest.raises(PositionUnknownError):
        if pos["has_position"]:
            pytest.fail("read as held")
    with pytest.raises(IBNiceFuncsError):
        bool(pos["quantity"])
    for probe in (lambda q: q > 0, lambda q: q * 2, lambda q: q + 1, lambda q: float(q),
                  lambda q: abs(q), lambda q: -q):
        with pytest.raises((TypeError, ValueError)):
            probe(pos["quantity"])
    assert pos["quantity"] != 0 and isinstance(pos["market_value"], Unknown)
    assert json.loads(json.dumps(pos))["has_position"] == "unknown"
    copied = copy.deepcopy(pos)
    assert isinstance(copied["quantity"], Unknown) and copied["quantity"].reason == pos["error"]


@given(NUMBERS)
def test_reconcile_refuses_non_finite_books_with_value_error(qty):
    try:
        float_ok = math.isfinite(float(qty)) and not isinstance(qty, bool)
    except OverflowError:
        float_ok = False
    if float_ok:
        return
    with Client(host="127.0.0.1", port=1, sources="ib") as client:  # refused before connecting
        with pytest.raises(ValueError):
            client.trading.reconcile_positions({"AAPL": qty})
