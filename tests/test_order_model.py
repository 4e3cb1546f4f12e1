"""The order vocabulary (ib_nice_funcs.model): one row per order type, STP LMT's rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ib_nice_funcs.model import ORDER_SPECS, ORDER_TYPES, order_result, portal_body_fields
from ib_nice_funcs.portal.order_mapping import open_order_row, order_body
from ib_nice_funcs.trading.validation import validate_order
from ib_nice_funcs.trading.venues.tws import build_ib_order


def test_every_type_is_one_row_with_consistent_fields():
    assert ORDER_TYPES == tuple(ORDER_SPECS)
    for name, spec in ORDER_SPECS.items():
        fields = set(spec.needs) | set(spec.takes)
        assert not set(spec.needs) & set(spec.takes), name
        # every IB field and portal field reads a price the type needs or takes
        assert {field for _, field, _ in spec.ib_fields} <= fields, name
        assert {field for _, field in spec.portal_fields} <= fields, name


def test_stop_limit_builds_the_ib_order_and_the_portal_body():
    request = validate_order("AAPL", "BUY", 3, "stp lmt", limit_price=101.239,
                             stop_price=100.004, client_order_id="sl-1")
    assert (request.order_type, request.limit_price, request.stop_price) == (
        "STP LMT", 101.239, 100.004)
    order = build_ib_order(request, 3, account="DU1", min_tick=0.01)
    assert order.orderType == "STP LMT"
    assert order.lmtPrice == pytest.approx(101.23) and order.auxPrice == pytest.approx(100.0)
    body = order_body(conid=265598, account="DU1", side="BUY", quantity=3, order_type="STP LMT",
                      tif="DAY", client_order_id="sl-1", limit_price=101.23, stop_price=100.0)
    [row] = body["orders"]
    assert row["orderType"] == "STOP_LIMIT" and row["price"] == 101.23 and row["auxPrice"] == 100.0
    with pytest.raises(ValueError, match="STP LMT needs stop_price"):
        order_body(conid=1, account="DU1", side="BUY", quantity=1, order_type="STP LMT",
                   tif="DAY", client_order_id="x", limit_price=10.0)


def test_a_portal_stop_limit_row_reads_back_both_prices():
    row = open_order_row({"orderId": 7, "orderType": "Stop Limit", "price": "101.23",
                          "auxPrice": "100.00", "side": "BUY", "totalSize": 3,
                          "status": "Submitted", "ticker": "AAPL", "order_ref": "sl-1"})
    assert row["order_type"] == "STP LMT"
    assert (row["limit_price"], row["stop_price"]) == (101.23, 100.0)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"limit_price": 100.0}, "stop_price is required for order_type STP LMT"),
        ({"stop_price": 100.0}, "limit_price is required for order_type STP LMT"),
        ({"side": "BUY", "limit_price": 99.0, "stop_price": 100.0},
         "a BUY STP LMT needs limit_price >= stop_price"),
        ({"side": "SELL", "limit_price": 101.0, "stop_price": 100.0},
         "a SELL STP LMT needs limit_price <= stop_price"),
        ({"limit_price": 100.0, "stop_price": 100.0, "trail_percent": 1},
         "only used with order_type TRAIL"),
    ],
)
def test_stop_limit_is_refused_before_anything_is_sent(kwargs, needle):
    args = {"side": "BUY", **kwargs}
    with pytest.raises(ValueError) as err:
        validate_order("AAPL", args.pop("side"), 1, "STP LMT", **args)
    assert needle in str(err.value)


@given(st.sampled_from(["BUY", "SELL"]), st.floats(1e-3, 1e6), st.floats(1e-3, 1e6))
def test_stop_limit_side_rule(side, limit, stop):
    on_the_right_side = limit >= stop if side == "BUY" else limit <= stop
    try:
        validate_order("AAPL", side, 1, "STP LMT", limit_price=limit, stop_price=stop)
    except ValueError as exc:
        assert not on_the_right_side and "STP LMT needs limit_price" in str(exc)
    else:
        assert on_the_right_side


def test_portal_fields_for_a_trailing_stop():
    assert portal_body_fields("TRAIL", {"trail_percent": 2.0, "stop_price": 90.0}) == {
        "trailingAmt": 2.0, "trailingType": "%", "price": 90.0}
    with pytest.raises(ValueError, match="TRAIL needs trail_percent or trail_amount"):
        portal_body_fields("TRAIL", {})


def test_order_result_has_the_keys_of_the_typed_dict():
    result = order_result(success=True, status="Filled", filled_qty=2, source="portal")
    assert list(result)[:12] == ["success", "order_id", "client_order_id", "status",
                                 "filled_qty", "avg_price", "error", "code", "symbol", "side",
                                 "quantity", "order_type"]
    assert result["source"] == "portal" and result["filled_qty"] == 2.0
    assert order_result(success=True, status="Unknown")["success"] is None
