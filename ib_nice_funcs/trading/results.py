"""Order and trade plumbing without I/O: result dicts, statuses, ticks.

Everything here is a plain function of ib_async objects (or of plain
values), so it is tested without a gateway; it only reads attributes. The
IB order itself is built where it goes on the wire
(:func:`ib_nice_funcs.trading.venues.tws.build_ib_order`).

The result dict every order helper returns is
:class:`ib_nice_funcs.model.OrderResult` (built by
:func:`ib_nice_funcs.model.order_result`, re-exported here), the order
states and the order-type rows (:data:`~ib_nice_funcs.model.ORDER_SPECS`)
live in :mod:`ib_nice_funcs.model`.
``success`` is None, and ``status`` :data:`UNKNOWN`, when the order was (or
may have been) sent and its fate is not known: the acknowledgement was lost,
the wait timed out before IB answered, or the connection dropped after the
send. It is neither a success nor a failure: call again with the same
``client_order_id`` to learn the order's state; it is never sent twice.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any, TypedDict, cast

from ..errors import NoPositionError, OrderSizeError  # noqa: F401 - re-exported
from ..model import (
    ACCEPTED_STATES,
    DONE_STATES,
    ORDER_SPECS,
    UNKNOWN,
    FlattenReport,
    OpenOrderRow,
    OrderResult,
    order_result,
)

if TYPE_CHECKING:  # pragma: no cover
    from ib_async import Fill, Trade

    from ..model import OrderRequest

__all__ = [
    "ChunkKillResult",
    "ResumeResult",
    "on_the_grid",
    "Outcome",
    "ACCEPTED_STATES",
    "DONE_STATES",
    "UNKNOWN",
    "as_unknown",
    "carried_result",
    "carry_result",
    "check_prices_on_grid",
    "completed_result",
    "flatten_report",
    "effective_status",
    "empty_result",
    "fills_result",
    "is_multiple",
    "is_settled",
    "order_result",
    "order_summary",
    "rejection_of",
    "round_price",
    "round_quantity",
    "trade_result",
    "waits_for_fill",
]

#: Time-in-force values that end the order at once (filled or cancelled).
_IMMEDIATE_TIFS = frozenset({"IOC", "FOK"})
#: ib_async's sentinel for "no value" in float order fields.
_UNSET = 1.7976931348623157e308

# ib_async writes rejections into the trade log as "Error 201, reqId 5: text".
_LOG_PREFIX = re.compile(r"^(?:Error|Warning) -?\d+, reqId -?\d+: ")


# -- statuses ------------------------------------------------------------------


def effective_status(trade: Trade) -> str:
    """The trade's status, looking past ib_async's ``ValidationError`` marker.

    ib_async sets ``ValidationError`` when IB sends an order *warning* (e.g.
    399) although the order stands; the status before the warning is the
    one that describes the order.
    """
    status = trade.orderStatus.status or "PendingSubmit"
    if status not in DONE_STATES and _fully_executed(trade):
        # The executions are the truth when the status messages were lost.
        return "Filled"
    if status != "ValidationError":
        return status
    for entry in reversed(trade.log):
        if entry.status and entry.status != "ValidationError":
            return entry.status
    return "PreSubmitted"


def _fully_executed(trade: Trade) -> bool:
    total = float(trade.order.totalQuantity or 0.0)
    if total <= 0 or not trade.fills:
        return False
    return sum(float(f.execution.shares) for f in trade.fills) >= total


def waits_for_fill(order_type: str, tif: str) -> bool:
    """Whether ``wait=True`` waits for a fill (MKT, IOC, FOK) or only for acceptance."""
    spec = ORDER_SPECS.get(order_type.upper())
    return (spec is not None and spec.fills_at_once) or tif.upper() in _IMMEDIATE_TIFS


def is_settled(trade: Trade, for_fill: bool) -> bool:
    """Whether a waiting caller may stop waiting for ``trade``.

    Args:
        trade: The live ib_async trade.
        for_fill: True to wait for a fill (or a final state); False to stop
            as soon as IB has accepted the order (Submitted / PreSubmitted).
    """
    status = effective_status(trade)
    if status in DONE_STATES:
        return True
    return not for_fill and status in ACCEPTED_STATES


def rejection_of(trade: Trade) -> tuple[int | None, str] | None:
    """IB's error code and message when the trade ended without filling, else None.

    ib_async turns an order error (201 rejected, 202 cancelled, 10147...) into
    a ``Cancelled`` status plus a log entry carrying the code.
    """
    status = effective_status(trade)
    if status not in ("Cancelled", "ApiCancelled", "Inactive"):
        return None
    for entry in reversed(trade.log):
        code = getattr(entry, "errorCode", 0) or 0
        if code:
            message = _LOG_PREFIX.sub("", entry.message or "").split(", contract: ")[0]
            return int(code), message.strip() or f"IB error {code}"
    return None, f"the order ended {status} at IB"


# -- result dicts ----------------------------------------------------------------


def as_unknown(result: OrderResult, error: str) -> OrderResult:
    """Mark a sent order's result as of unknown fate (``success`` None), in place.

    IB's own status is kept as ``ib_status``; ``error`` says why and what to do.
    """
    ib_status = result["status"]
    result["success"] = None
    result["status"] = UNKNOWN
    result["ib_status"] = ib_status
    result["error"] = result.get("error") or error
    return result


def carry_result(exc: BaseException, result: OrderResult) -> None:
    """Attach ``result`` to ``exc`` as ``exc.result`` (the module functions return it)."""
    setattr(exc, "result", result)  # noqa: B010 - errors.py's classes declare no such field


def carried_result(exc: BaseException) -> OrderResult | None:
    """The result dict an error raised after a send carries (``exc.result``), else None."""
    result = getattr(exc, "result", None)
    # Only carry_result sets it, always with an OrderResult.
    return cast("OrderResult", result) if isinstance(result, dict) else None


def empty_result(error: str, symbol: str | None = None, **fields: Any) -> OrderResult:
    """A failure result for an order that was never sent."""
    return order_result(success=False, status="NotSent", error=error, symbol=symbol, **fields)


def _price(value: float | Decimal | None) -> float | None:
    return float(value) if value and math.isfinite(value) and value < _UNSET else None


def trade_result(trade: Trade, symbol: str | None = None, **extra: Any) -> OrderResult:
    """The result dict describing a live ib_async trade.

    ``success`` is True when the order filled, or when IB accepted it and it
    is working (a resting order, or a market order still filling); False when
    it was rejected, cancelled or not yet acknowledged.
    """
    order, status_obj = trade.order, trade.orderStatus
    status = effective_status(trade)
    filled = float(status_obj.filled or 0.0)
    if not filled and trade.fills:
        filled = sum(float(f.execution.shares) for f in trade.fills)
    avg = _price(status_obj.avgFillPrice)
    if avg is None and trade.fills:
        avg = _avg_price(trade.fills)
    problem = rejection_of(trade)
    code, error = (problem if problem else (None, None))
    success = status == "Filled" or status in ACCEPTED_STATES or (
        problem is not None and filled > 0 and status != "Inactive"
    )
    if problem is not None and filled > 0:
        error = f"{error} (partially filled: {filled:g} of {float(order.totalQuantity):g})"
    return order_result(
        success=success,
        order_id=int(order.orderId) or None,
        client_order_id=order.orderRef or None,
        status=status,
        filled_qty=filled,
        avg_price=avg,
        error=error,
        code=code,
        symbol=symbol,
        side=order.action or None,
        quantity=float(order.totalQuantity),
        order_type=order.orderType or None,
        perm_id=int(status_obj.permId or order.permId or 0) or None,
        **extra,
    )


def completed_result(
    trade: Trade, fills: list[Fill], symbol: str | None = None, **extra: Any
) -> OrderResult:
    """The result for an order the gateway lists as completed (``reqCompletedOrders``).

    ib_async builds such a trade from the completedOrder message, without
    fills or filled quantity; ``fills`` are the order's executions.
    """
    return trade_result(dataclasses.replace(trade, fills=list(fills)), symbol, **extra)


def _avg_price(fills: Iterable[Fill]) -> float | None:
    qty = value = 0.0
    for fill in fills:
        qty += float(fill.execution.shares)
        value += float(fill.execution.shares) * float(fill.execution.price)
    return value / qty if qty else None


def fills_result(
    fills: list[Fill], client_order_id: str, symbol: str | None = None, **extra: Any
) -> OrderResult:
    """A result for an order known only by its executions (it is no longer open).

    Used after a reconnect or a restart: the gateway reports executions with
    their ``orderRef`` even when it no longer lists the order.
    """
    first = fills[0].execution
    qty = sum(float(f.execution.shares) for f in fills)
    return order_result(
        success=True,
        order_id=int(first.orderId) or None,
        client_order_id=client_order_id,
        status="Filled",
        filled_qty=qty,
        avg_price=_avg_price(fills),
        symbol=symbol,
        side="BUY" if first.side.upper() in ("BOT", "BUY") else "SELL",
        quantity=qty,
        perm_id=int(first.permId or 0) or None,
        **extra,
    )


# -- sizes and prices --------------------------------------------------------------


def _dec(x: float) -> Decimal:
    return Decimal(repr(float(x)))


def round_quantity(quantity: float, increment: float) -> float:
    """``quantity`` rounded DOWN to a multiple of ``increment`` (never sells more than held)."""
    if increment <= 0:
        return float(quantity)
    inc = _dec(increment)
    steps = (_dec(quantity) / inc).to_integral_value(rounding=ROUND_FLOOR)
    return float(steps * inc)


def is_multiple(quantity: float, increment: float) -> bool:
    """Whether ``quantity`` is a whole number of ``increment`` steps."""
    if increment <= 0:
        return True
    return (_dec(quantity) % _dec(increment)) == 0


def round_price(price: float, tick: float, direction: str = "nearest") -> float:
    """``price`` on the contract's tick grid.

    Args:
        price: The price asked for.
        tick: IB's minimum tick (0 or negative: returned unchanged).
        direction: ``"down"`` (a buy limit never pays more than asked),
            ``"up"`` (a sell limit never takes less) or ``"nearest"``.
    """
    if not tick or tick <= 0 or not math.isfinite(tick):
        return float(price)
    mode = {"down": ROUND_FLOOR, "up": ROUND_CEILING}.get(direction, ROUND_HALF_EVEN)
    t = _dec(tick)
    steps = (_dec(price) / t).to_integral_value(rounding=mode)
    if steps <= 0:
        steps = Decimal(1)
    return float(steps * t)


# -- IB orders -----------------------------------------------------------------------


def check_prices_on_grid(request: OrderRequest, min_tick: float) -> None:
    """Refuse limit and stop prices below the contract's minimum tick (nothing is sent).

    :func:`round_price` lifts such a price to one tick, so a buy limit of
    0.001 on a stock would otherwise pay up to 0.01, ten times what was asked.

    Raises:
        ValueError: a limit or stop price below ``min_tick``.
    """
    if not min_tick or min_tick <= 0 or not math.isfinite(min_tick):
        return
    for name, price in (("limit_price", request.limit_price), ("stop_price", request.stop_price)):
        if price is not None and price < min_tick:
            raise ValueError(
                f"{name}={price!r} is below the contract's minimum tick {min_tick:g}; "
                "nothing was sent"
            )


def on_the_grid(request: OrderRequest, min_tick: float) -> OrderRequest:
    """``request`` with its prices on the contract's tick grid, as its type's row says.

    Limit prices go in the customer's favour (a buy down, a sell up), stops
    and trailing amounts to the nearest tick, so IB's error 110 ("price does
    not conform to the minimum price variation") cannot happen for a price an
    agent computed as ``price * 0.99``. Both venues send this request.
    """
    limit_dir = "down" if request.side == "BUY" else "up"
    changes: dict[str, Any] = {}  # price fields only (``replace`` types them per field)
    for _, field, rounding in ORDER_SPECS[request.order_type].ib_fields:
        value = getattr(request, field)
        if value is None or rounding == "none":
            continue
        direction = limit_dir if rounding == "limit" else "nearest"
        changes[field] = round_price(value, min_tick, direction)
    return dataclasses.replace(request, **changes) if changes else request


def _stop_in_aux(order_type: str) -> bool:
    """Whether the type's stop price travels in IB's ``auxPrice`` (STP, STP LMT; not TRAIL)."""
    spec = ORDER_SPECS.get(order_type)
    return spec is not None and ("auxPrice", "stop_price", "nearest") in spec.ib_fields


def order_summary(trade: Trade, symbol: str | None = None) -> OpenOrderRow:
    """One open order as a plain dict (for ``get_open_orders``)."""
    order, st = trade.order, trade.orderStatus
    return {
        "order_id": int(order.orderId) or None,
        "perm_id": int(order.permId or st.permId or 0) or None,
        "client_id": int(order.clientId),
        "client_order_id": order.orderRef or None,
        "symbol": symbol,
        "side": order.action,
        "quantity": float(order.totalQuantity),
        "order_type": order.orderType,
        "limit_price": _price(order.lmtPrice) if order.orderType != "TRAIL" else None,
        "stop_price": _price(order.auxPrice) if _stop_in_aux(order.orderType) else None,
        "trail_percent": _price(order.trailingPercent),
        "tif": order.tif,
        "status": effective_status(trade),
        "filled_qty": float(st.filled or 0.0),
        "remaining": float(st.remaining) if st.remaining else float(order.totalQuantity),
        "account": order.account or None,
    }


def flatten_report(
    cancelled: int,
    closed: list[OrderResult],
    remaining_orders: list[OpenOrderRow],
    remaining_positions: dict[str, float],
    source: str | None = None,
) -> FlattenReport:
    """The ``emergency_stop`` result: success only when nothing is left open or held.

    ``source``: ``"portal"`` when the Client Portal did it (the key is absent otherwise).
    """
    problems = []
    if remaining_orders:
        problems.append(f"{len(remaining_orders)} order(s) still open")
    if remaining_positions:
        problems.append("positions remain: " + ", ".join(
            f"{s} {q:g}" for s, q in remaining_positions.items()))
    report: FlattenReport = {
        "success": not problems,
        "cancelled_orders": cancelled,
        "closed": closed,
        "remaining_orders": remaining_orders,
        "remaining_positions": remaining_positions,
        "error": "; ".join(problems) or None,
    }
    if source is not None:
        report["source"] = source
    return report


# -- the other getting-out and book results ---------------------------------------------


class ChunkKillResult(TypedDict):
    """``chunk_kill``'s result: the child orders' results and what is left."""

    success: bool
    symbol: str
    chunks: list[OrderResult]
    filled_qty: float
    remaining_qty: float
    cancelled_orders: int
    error: str | None


class ResumeResult(TypedDict):
    """``resume_trading``'s result."""

    success: bool
    account: str
    was_halted: bool
    halted_by: str | None
    error: None


class Outcome(dict):
    """A result dict that is truthy exactly when its ``success`` is.

    Agents test some results for truth (``if n.chunk_kill(...):``,
    ``if n.ai_entry(...):``); a plain non-empty dict would read as success
    even when ``success`` is False.
    """

    def __bool__(self) -> bool:
        return bool(self.get("success"))
