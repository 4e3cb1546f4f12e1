"""The order vocabulary both venues speak: request, order types, result, states.

No I/O and no broker imports. It sits below :mod:`ib_nice_funcs.trading`
(TWS orders, risk, failover) and :mod:`ib_nice_funcs.portal` (Client Portal
orders); both import it and it imports neither.

- :class:`OrderRequest`: the frozen, validated order that travels unchanged
  from the public call to the wire (built by
  :func:`ib_nice_funcs.trading.validation.validate_order`).
- :data:`ORDER_SPECS`: one :class:`OrderTypeSpec` row per order type: which
  prices it needs or takes, the IB ``Order`` fields and the Client Portal
  body fields they go to, and any rule of its own. Adding an order type is
  one row here (plus its matching in the simulators).
- :class:`OrderResult`: the keys of every order helper's result dict;
  :class:`OpenOrderRow`, :class:`CancelAllResult` and :class:`FlattenReport`
  the shapes of the open-order rows, ``cancel_all`` and ``emergency_stop``
  (both venues build them).
- :data:`DONE_STATES`, :data:`ACCEPTED_STATES`, :data:`UNKNOWN`: order states.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

__all__ = [
    "ACCEPTED_STATES",
    "DONE_STATES",
    "CancelAllResult",
    "CancelledOrders",
    "FlattenReport",
    "OpenOrderRow",
    "ORDER_SPECS",
    "ORDER_TYPES",
    "ORDER_TYPE_ALIASES",
    "PRICE_FIELDS",
    "UNKNOWN",
    "OrderRequest",
    "OrderResult",
    "OrderTypeSpec",
    "order_result",
    "portal_body_fields",
    "spec_of",
]

# -- states ----------------------------------------------------------------------------

#: Statuses after which an order can no longer fill: ib_async's DoneStates
#: plus TWS's ``Inactive`` and the Client Portal's ``Rejected`` and ``Expired``.
DONE_STATES = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive", "Rejected",
                         "Expired"})
#: Statuses of an order IB has accepted and is working.
ACCEPTED_STATES = frozenset({"Submitted", "PreSubmitted"})
#: The status of an order whose fate is not known (``success`` None).
UNKNOWN = "Unknown"


# -- the request -------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderRequest:
    """A validated, normalised order; what the trading layer sends.

    Attributes:
        symbol: The symbol as given (stripped), or an ib_async Contract.
        side: ``BUY`` or ``SELL``.
        quantity: Positive quantity.
        order_type: One of :data:`ORDER_TYPES`.
        limit_price: Limit price (LMT, LOC, STP LMT; optional cap for MIDPRICE).
        stop_price: Stop trigger (STP, STP LMT; optional initial stop for TRAIL).
        trail_percent: Trailing distance in percent (TRAIL).
        trail_amount: Trailing distance in price units (TRAIL).
        tif: One of ``DAY, GTC, IOC, OPG, FOK``.
        client_order_id: IB ``orderRef``; generated when not given, so a
            resend after a reconnect can be recognised.
    """

    symbol: Any
    side: str
    quantity: float
    order_type: str = "MKT"
    limit_price: float | None = None
    stop_price: float | None = None
    trail_percent: float | None = None
    trail_amount: float | None = None
    tif: str = "DAY"
    client_order_id: str = ""


# -- order types -------------------------------------------------------------------------

#: The request's price fields an order type may need or take.
PRICE_FIELDS: tuple[str, ...] = ("limit_price", "stop_price", "trail_percent", "trail_amount")


@dataclass(frozen=True)
class OrderTypeSpec:
    """One order type: its prices, its IB fields, its Client Portal fields, its rules.

    Attributes:
        portal_type: The Client Portal's ``orderType``.
        needs: Request price fields that must be given.
        takes: Request price fields that may be given (besides ``needs``).
        ib_fields: ``(Order attribute, request field, rounding)``: rounding
            ``"limit"`` (in the customer's favour: a buy down, a sell up),
            ``"nearest"`` (to the nearest tick) or ``"none"``.
        portal_fields: ``(body key, request field)`` pairs.
        portal_trailing: TRAIL's ``trailingAmt`` / ``trailingType`` pair.
        day_only: An auction order IB takes only with ``tif="DAY"``.
        opening_auction: Takes ``tif="OPG"``.
        fills_at_once: ``wait=True`` waits for the fill, not only for acceptance.
        check: A rule of the type's own, on the built request; raises ValueError.
    """

    portal_type: str
    needs: tuple[str, ...] = ()
    takes: tuple[str, ...] = ()
    ib_fields: tuple[tuple[str, str, str], ...] = ()
    portal_fields: tuple[tuple[str, str], ...] = ()
    portal_trailing: bool = False
    day_only: bool = False
    opening_auction: bool = False
    fills_at_once: bool = False
    check: Callable[[OrderRequest], None] | None = None


def _check_trail(request: OrderRequest) -> None:
    if (request.trail_percent is None) == (request.trail_amount is None):
        raise ValueError(
            "order_type TRAIL needs exactly one of trail_percent (in (0, 100)) or "
            f"trail_amount (> 0); got trail_percent={request.trail_percent!r}, "
            f"trail_amount={request.trail_amount!r}"
        )
    if request.trail_percent is not None and request.trail_percent >= 100:
        raise ValueError(f"trail_percent must be in (0, 100), got {request.trail_percent!r}")


def _check_stop_limit(request: OrderRequest) -> None:
    """IB's stop-limit rule: the limit is on the far side of the stop (or at it).

    A BUY stop-limit triggers when the price rises to ``stop_price`` and then
    buys at ``limit_price`` or lower, so its limit is at or above the stop; a
    SELL triggers on a fall to the stop and sells at the limit or higher, so
    its limit is at or below the stop. The other way round the order could
    not fill at the moment it triggers.
    """
    lmt, stp = request.limit_price, request.stop_price
    assert lmt is not None and stp is not None  # both in ``needs``
    if request.side == "BUY" and lmt < stp:
        raise ValueError(
            f"a BUY STP LMT needs limit_price >= stop_price (it triggers at the stop and buys "
            f"at the limit or lower); got limit_price={lmt!r} below stop_price={stp!r}"
        )
    if request.side == "SELL" and lmt > stp:
        raise ValueError(
            f"a SELL STP LMT needs limit_price <= stop_price (it triggers at the stop and "
            f"sells at the limit or higher); got limit_price={lmt!r} above stop_price={stp!r}"
        )


_LIMIT = (("lmtPrice", "limit_price", "limit"),)

#: One row per order type IB takes from this package, by IB's ``orderType``.
ORDER_SPECS: dict[str, OrderTypeSpec] = {
    "MKT": OrderTypeSpec("MKT", opening_auction=True, fills_at_once=True),
    "LMT": OrderTypeSpec("LMT", needs=("limit_price",), ib_fields=_LIMIT,
                         portal_fields=(("price", "limit_price"),), opening_auction=True),
    "STP": OrderTypeSpec("STP", needs=("stop_price",),
                         ib_fields=(("auxPrice", "stop_price", "nearest"),),
                         # the CP convention: the stop in ``price``, and in ``auxPrice``
                         portal_fields=(("price", "stop_price"), ("auxPrice", "stop_price"))),
    "TRAIL": OrderTypeSpec("TRAIL", takes=("stop_price", "trail_percent", "trail_amount"),
                           ib_fields=(("trailingPercent", "trail_percent", "none"),
                                      ("auxPrice", "trail_amount", "nearest"),
                                      ("trailStopPrice", "stop_price", "nearest")),
                           portal_fields=(("price", "stop_price"),), portal_trailing=True,
                           check=_check_trail),
    "MOC": OrderTypeSpec("MOC", day_only=True),
    "LOC": OrderTypeSpec("LOC", needs=("limit_price",), ib_fields=_LIMIT,
                         portal_fields=(("price", "limit_price"),), day_only=True),
    "MIDPRICE": OrderTypeSpec("MIDPRICE", takes=("limit_price",), ib_fields=_LIMIT,
                              portal_fields=(("price", "limit_price"),)),
    "STP LMT": OrderTypeSpec("STOP_LIMIT", needs=("limit_price", "stop_price"),
                             ib_fields=(*_LIMIT, ("auxPrice", "stop_price", "nearest")),
                             portal_fields=(("price", "limit_price"), ("auxPrice", "stop_price")),
                             check=_check_stop_limit),
}
#: The order types, in the order error messages list them.
ORDER_TYPES: tuple[str, ...] = tuple(ORDER_SPECS)
#: Other spellings accepted for an order type (any case), including the
#: Client Portal's names of open orders.
ORDER_TYPE_ALIASES: dict[str, str] = {
    "MARKET": "MKT", "LIMIT": "LMT", "STOP": "STP", "TRAILING STOP": "TRAIL",
    "STOP LIMIT": "STP LMT", "STOP_LIMIT": "STP LMT", "STPLMT": "STP LMT",
}


def spec_of(order_type: str) -> OrderTypeSpec:
    """The row of ``order_type`` (IB's name or an alias, any case).

    Raises:
        ValueError: not an order type of :data:`ORDER_TYPES`.
    """
    name = str(order_type).strip().upper()
    spec = ORDER_SPECS.get(ORDER_TYPE_ALIASES.get(name, name))
    if spec is None:
        raise ValueError(f"order_type={order_type!r}; valid: {', '.join(ORDER_TYPES)}")
    return spec


def portal_body_fields(order_type: str, prices: Mapping[str, float | None]) -> dict[str, Any]:
    """The price fields of a Client Portal order body for ``order_type``.

    Args:
        order_type: IB's name of the type (or an alias).
        prices: Request price fields (:data:`PRICE_FIELDS`) to their values or None.

    Raises:
        ValueError: a price the type needs is missing (TRAIL: neither trailing distance).
    """
    spec = spec_of(order_type)
    kind = str(order_type).strip().upper()
    for name in spec.needs:
        if prices.get(name) is None:
            raise ValueError(f"{kind} needs {name}")
    body: dict[str, Any] = {}
    if spec.portal_trailing:
        trail_percent, trail_amount = prices.get("trail_percent"), prices.get("trail_amount")
        if trail_percent is not None:
            body["trailingAmt"], body["trailingType"] = float(trail_percent), "%"
        elif trail_amount is not None:
            body["trailingAmt"], body["trailingType"] = float(trail_amount), "amt"
        else:
            raise ValueError(f"{kind} needs trail_percent or trail_amount")
    for key, name in spec.portal_fields:
        value = prices.get(name)
        if value is not None:
            body[key] = float(value)
    return body


# -- the result --------------------------------------------------------------------------


class _OpenOrderRowKeys(TypedDict):
    order_id: int | None
    perm_id: int | None
    client_id: int | None
    client_order_id: str | None
    symbol: str | None
    side: str | None
    quantity: float
    order_type: str | None
    limit_price: float | None
    stop_price: float | None
    trail_percent: float | None
    tif: str | None
    status: str
    filled_qty: float
    remaining: float
    account: str | None


class OpenOrderRow(_OpenOrderRowKeys, total=False):
    """One working order (``get_open_orders``, ``uncancelled``, ``remaining``).

    The Client Portal's rows add ``avg_price``, ``con_id`` and ``source``
    (``perm_id`` and ``client_id`` are None there).
    """

    avg_price: float | None
    con_id: int | None
    source: str


class CancelledOrders(TypedDict, total=False):
    """What ``kill_switch`` adds to its :class:`OrderResult`: the symbol's orders it
    cancelled and those still open."""

    cancelled_orders: int
    uncancelled: list[OpenOrderRow]


class _CancelAllKeys(TypedDict):
    success: bool
    cancelled: int
    remaining: list[OpenOrderRow]
    error: str | None


class CancelAllResult(_CancelAllKeys, total=False):
    """``cancel_all``'s result: ``remaining`` lists orders still open at the deadline."""

    source: str



class _OrderResultKeys(TypedDict):
    success: bool | None
    order_id: int | None
    client_order_id: str | None
    status: str
    filled_qty: float
    avg_price: float | None
    error: str | None
    code: int | None
    symbol: str | None
    side: str | None
    quantity: float | None
    order_type: str | None


class OrderResult(_OrderResultKeys, total=False):
    """The result dict of every order helper (TWS and Client Portal alike).

    ``success`` is None, and ``status`` :data:`UNKNOWN`, when the order was
    (or may have been) sent and its fate is not known; call again with the
    same ``client_order_id`` to learn it (it is never sent twice). The keys
    below are present when they apply.

    Attributes:
        perm_id: IB's permanent order id (TWS).
        source: ``"portal"`` when the Client Portal answered.
        ib_status: IB's own status of an order marked :data:`UNKNOWN`.
        existing: The client order id was placed before; this is that order.
        questions: The Client Portal's questions confirmed on the way.
        timed_out: Working (or partly filled) at IB when the wait ended.
        risk_limit: The risk limit a refused order breached (module functions).
        cancelled_orders: ``kill_switch``: the symbol's orders it cancelled.
        uncancelled: ``kill_switch``: the symbol's orders still open (other
            API clients' on TWS), as :class:`OpenOrderRow` rows.
    """

    perm_id: int | None
    source: str
    ib_status: str
    existing: bool
    questions: list[str]
    timed_out: bool
    risk_limit: str | None
    cancelled_orders: int
    uncancelled: list[OpenOrderRow]


def order_result(
    *,
    success: bool | None,
    order_id: int | None = None,
    client_order_id: str | None = None,
    status: str = "",
    filled_qty: float = 0.0,
    avg_price: float | None = None,
    error: str | None = None,
    code: int | None = None,
    symbol: str | None = None,
    side: str | None = None,
    quantity: float | None = None,
    order_type: str | None = None,
    **extra: Any,
) -> OrderResult:
    """The :class:`OrderResult` dict; ``extra`` keys are appended.

    ``success`` is None whenever ``status`` is :data:`UNKNOWN` (and may be
    None only then).
    """
    result: dict[str, Any] = {
        "success": None if status == UNKNOWN or success is None else bool(success),
        "order_id": order_id,
        "client_order_id": client_order_id,
        "status": status,
        "filled_qty": float(filled_qty or 0.0),
        "avg_price": avg_price,
        "error": error,
        "code": code,
        "symbol": symbol,
        "side": side,
        "quantity": quantity,
        "order_type": order_type,
    }
    result.update(extra)
    return result  # type: ignore[return-value]


class _FlattenReportKeys(TypedDict):
    success: bool
    cancelled_orders: int
    closed: list[OrderResult]
    remaining_orders: list[OpenOrderRow]
    remaining_positions: dict[str, float]
    error: str | None


class FlattenReport(_FlattenReportKeys, total=False):
    """``emergency_stop``'s result: success only when nothing is left open or held."""

    source: str
