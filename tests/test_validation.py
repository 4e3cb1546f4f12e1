"""Order argument validation, USD sizing and client order ids."""

from __future__ import annotations

import math
import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ib_nice_funcs.trading.validation import (
    ORDER_TYPES,
    SIDES,
    TIFS,
    OrderRequest,
    new_client_order_id,
    quantity_for_usd,
    validate_order,
    validate_percentage,
    validate_usd_amount,
)


def test_constants():
    assert ORDER_TYPES == ("MKT", "LMT", "STP", "TRAIL", "MOC", "LOC", "MIDPRICE", "STP LMT")
    assert SIDES == ("BUY", "SELL")
    assert TIFS == ("DAY", "GTC", "IOC", "OPG", "FOK")


def test_normalises_case_and_fills_an_id():
    req = validate_order(" AAPL ", "buy", 10, "lmt", limit_price=150, tif="gtc")
    assert isinstance(req, OrderRequest)
    assert (req.symbol, req.side, req.quantity, req.order_type, req.tif) == (
        "AAPL", "BUY", 10.0, "LMT", "GTC"
    )  # fmt: skip
    assert req.limit_price == 150.0 and req.stop_price is None
    assert re.fullmatch(r"[A-Za-z0-9_.:-]{1,40}", req.client_order_id)
    assert validate_order("AAPL", "sell", 1, "market").order_type == "MKT"
    assert validate_order("AAPL", "SELL", 1, client_order_id="my-id.1").client_order_id == "my-id.1"


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(order_type="MKT"),
        dict(order_type="MOC"),
        dict(order_type="MIDPRICE"),
        dict(order_type="MIDPRICE", limit_price=10.5),
        dict(order_type="LMT", limit_price=1.0),
        dict(order_type="LOC", limit_price=1.0),
        dict(order_type="STP", stop_price=1.0),
        dict(order_type="TRAIL", trail_percent=5),
        dict(order_type="TRAIL", trail_amount=0.5, stop_price=9.0),
        dict(order_type="MKT", tif="IOC"),
    ],
)
def test_valid_combinations(kwargs):
    req = validate_order("AAPL", "BUY", 1, **kwargs)
    assert req.order_type == kwargs["order_type"]


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(side="HOLD"), "side must be one of BUY, SELL"),
        (dict(order_type="FOO"), "order_type must be one of MKT, LMT, STP, TRAIL"),
        (dict(tif="WEEK"), "tif must be one of DAY, GTC, IOC, OPG, FOK"),
        (dict(quantity=0), "quantity"),
        (dict(quantity=-5), "quantity"),
        (dict(quantity=math.nan), "quantity"),
        (dict(quantity=math.inf), "quantity"),
        (dict(quantity=True), "quantity"),
        (dict(order_type="LMT"), "limit_price is required"),
        (dict(order_type="LOC"), "limit_price is required"),
        (dict(order_type="STP"), "stop_price is required"),
        (dict(order_type="TRAIL"), "exactly one of trail_percent"),
        (dict(order_type="TRAIL", trail_percent=1, trail_amount=1), "exactly one of trail_percent"),
        (dict(order_type="TRAIL", trail_percent=100), "trail_percent must be in (0, 100)"),
        (dict(order_type="TRAIL", trail_percent=0), "trail_percent"),
        (dict(order_type="TRAIL", trail_amount=-1), "trail_amount"),
        (dict(order_type="LMT", limit_price=0), "limit_price"),
        (dict(order_type="LMT", limit_price=math.nan), "limit_price"),
        (dict(order_type="STP", stop_price=-1), "stop_price"),
        (dict(order_type="MKT", limit_price=10), "limit_price is only used"),
        (dict(order_type="LMT", limit_price=10, stop_price=9), "stop_price is only used"),
        (dict(order_type="MKT", trail_percent=5), "only used with order_type TRAIL"),
        (dict(client_order_id="has space"), "client_order_id"),
        (dict(client_order_id="x" * 41), "client_order_id"),
        (dict(symbol="  "), "symbol is empty"),
    ],
)
def test_invalid_orders_name_the_argument(kwargs, needle):
    args = dict(symbol="AAPL", side="BUY", quantity=1)
    args.update(kwargs)
    with pytest.raises(ValueError) as err:
        validate_order(**args)
    assert needle in str(err.value)


@pytest.mark.parametrize(
    "kwargs", [dict(side=1), dict(quantity="1"), dict(order_type=None), dict(symbol=42)]
)
def test_wrong_types_are_type_errors(kwargs):
    args = dict(symbol="AAPL", side="BUY", quantity=1)
    args.update(kwargs)
    with pytest.raises(TypeError):
        validate_order(**args)


def test_contract_symbol_is_kept():
    from ib_async import Stock

    c = Stock("AAPL", "SMART", "USD")
    assert validate_order(c, "BUY", 1).symbol is c


@given(
    st.sampled_from(SIDES),
    st.sampled_from(ORDER_TYPES),
    st.floats(allow_nan=True, allow_infinity=True),
    st.one_of(st.none(), st.floats(allow_nan=True)),
)
def test_validate_order_never_returns_a_bad_request(side, order_type, qty, price):
    kwargs = {}
    if order_type in ("LMT", "LOC"):
        kwargs["limit_price"] = price
    elif order_type == "STP":
        kwargs["stop_price"] = price
    elif order_type == "TRAIL":
        kwargs["trail_percent"] = price
    try:
        req = validate_order("AAPL", side.lower(), qty, order_type.lower(), **kwargs)
    except ValueError:
        return
    assert req.quantity > 0 and math.isfinite(req.quantity)
    for p in (req.limit_price, req.stop_price, req.trail_percent):
        assert p is None or (p > 0 and math.isfinite(p))
    if req.trail_percent is not None:
        assert req.trail_percent < 100


def test_usd_amount_and_percentage():
    assert validate_usd_amount(100) == 100.0
    assert validate_percentage(100) == 100.0
    assert validate_percentage(0.5) == 0.5
    for bad in (0, -1, math.nan, math.inf, True):
        with pytest.raises(ValueError, match="usd_amount"):
            validate_usd_amount(bad)
    for bad in (0, 100.01, -5, math.nan, False):
        with pytest.raises(ValueError, match="percentage"):
            validate_percentage(bad)
    with pytest.raises(TypeError):
        validate_usd_amount("100")


def test_quantity_for_usd_examples():
    assert quantity_for_usd(1000, 150) == 6.0
    assert quantity_for_usd(100, 150) == 0.0  # below one share
    assert quantity_for_usd(0.3, 0.1, 1.0) == 3.0  # no 2.9999 float trap
    assert quantity_for_usd(1000, 60_000, 1e-8) == pytest.approx(0.01666666)
    assert quantity_for_usd(1000, 60_000, 1e-8) <= 1000 / 60_000
    assert quantity_for_usd(50, 60_000, 1e-8, min_size=0.001) == 0.0
    assert quantity_for_usd(100, 60_000, 1e-8, min_size=0.001) == pytest.approx(0.00166666)
    with pytest.raises(ValueError):
        quantity_for_usd(100, 0)
    with pytest.raises(ValueError):
        quantity_for_usd(-1, 10)


@given(
    st.floats(min_value=0.01, max_value=1e7),
    st.floats(min_value=0.0001, max_value=1e5),
    st.sampled_from([1.0, 0.1, 0.01, 1e-4, 1e-8, 5.0, 100.0]),
)
def test_quantity_for_usd_rounds_down_to_the_increment(usd, price, inc):
    q = quantity_for_usd(usd, price, inc)
    assert q >= 0
    assert q * price <= usd * (1 + 1e-12)  # never spends more than asked
    if q > 0:
        steps = Decimal(repr(q)) / Decimal(repr(inc))
        assert steps == steps.to_integral_value()  # a whole number of increments
        assert q >= inc
    # One more increment would overspend.
    assert (q + inc) * price > usd * (1 - 1e-12)


def test_client_order_ids_are_unique_short_and_safe():
    ids = {new_client_order_id() for _ in range(5000)}
    assert len(ids) == 5000
    for i in list(ids)[:50]:
        assert i.startswith("inf-") and len(i) <= 40
        assert re.fullmatch(r"[A-Za-z0-9-]+", i)
    assert new_client_order_id("bot7").startswith("bot7-")
    for bad in ("", "has space", "x" * 13, "a-b", None):
        with pytest.raises(ValueError):
            new_client_order_id(bad)


@pytest.mark.parametrize(("order_type", "tif", "extra"), [
    ("MOC", "GTC", {}), ("LOC", "IOC", {"limit_price": 10.0}), ("STP", "OPG", {"stop_price": 9.0}),
])
def test_time_in_force_combinations_ib_refuses(order_type, tif, extra):
    with pytest.raises(ValueError, match="tif"):
        validate_order("AAPL", "BUY", 1, order_type, tif=tif, **extra)
