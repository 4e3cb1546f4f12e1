"""Order acceptance rules of the paper matching engine, as plain functions (no I/O).

What TWS checks before it accepts an order: the account, the action, the
order type and the prices it needs, the size increment, the minimum price
variation, and margin. Margin is checked on the part of an order that opens
or grows a position, long or short (closing a position needs none): its
value must not exceed the buying power (4x the available funds). Crypto
cannot be sold short. Children of a bracket are checked against their
parent, not the account (they close what the parent opens).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol, TypeGuard

from .catalog import CRYPTO, STOCK

if TYPE_CHECKING:
    from .catalog import Instrument
    from .market import PaperMarket
    from .records import SimOrder

__all__ = ["SUPPORTED_ORDER_TYPES", "EngineView", "valid_price", "validate", "size_from_cash"]


class EngineView(Protocol):
    """What the rules read of the matching engine (:class:`.matching.MatchingEngine`).

    A protocol here, not the engine class: the engine imports these rules.
    """

    account: str
    market: PaperMarket

    def usd_rate(self, currency: str, now: float | None = None) -> float: ...
    def open_orders(self, client_id: int | None = None) -> list[SimOrder]: ...
    def commission(self, inst: Instrument, quantity: float, price: float,
                   now: float | None = None) -> float: ...
    def position_quantity(self, inst: Instrument) -> float: ...
    def values(self, now: float | None = None) -> dict[str, float]: ...

SUPPORTED_ORDER_TYPES = ("MKT", "LMT", "STP", "STP LMT", "TRAIL", "MOC", "LOC", "MIDPRICE")
#: Order types that need a limit price / a stop price.
_NEEDS_LIMIT = ("LMT", "LOC", "STP LMT")
_NEEDS_STOP = ("STP", "STP LMT")


def valid_price(x: float | None) -> TypeGuard[float]:
    """A set, finite, positive price (IB's "unset" max double is not one).

    A ``TypeGuard``: where it is true, type checkers know ``x`` is a float."""
    return x is not None and not math.isinf(x) and 0 < x < 1.7e308


def size_from_cash(engine: EngineView, order: SimOrder, now: float) -> float:
    """The quantity a ``cashQty`` order buys or sells: the cash over the price,
    rounded down to the size increment (0.0 if it buys less than the minimum)."""
    inst = order.inst
    quote = engine.market.quote(inst.key, now)
    px = order.lmt_price if valid_price(order.lmt_price) else (
        quote.ask if order.action == "BUY" else quote.bid)
    cash = float(order.extra.get("cashQty") or 0.0)
    steps = math.floor(cash / px / inst.size_increment + 1e-9)
    qty = round(steps * inst.size_increment, 10)
    return qty if qty >= inst.min_size - 1e-12 else 0.0


def _shape(order: SimOrder) -> str:
    inst = order.inst
    if order.action not in ("BUY", "SELL"):
        return f"Invalid action {order.action!r}; use BUY or SELL"
    if order.order_type not in SUPPORTED_ORDER_TYPES:
        return f"Order type {order.order_type} is not supported by the paper simulator"
    qty = order.quantity
    if not qty or qty <= 0 or math.isinf(qty):
        return "The order size must be positive"
    steps = qty / inst.size_increment
    if abs(steps - round(steps)) > 1e-6 or qty < inst.min_size - 1e-12:
        return (f"The order size {qty:g} is not a multiple of the size increment "
                f"{inst.size_increment:g} (minimum {inst.min_size:g})")
    if order.order_type in _NEEDS_LIMIT and not valid_price(order.lmt_price):
        return f"{order.order_type} orders need a positive limit price"
    if order.order_type in _NEEDS_STOP and not valid_price(order.aux_price):
        return f"{order.order_type} orders need a positive stop price (auxPrice)"
    if order.order_type == "TRAIL" and not (valid_price(order.aux_price)
                                            or valid_price(order.trailing_percent)):
        return "TRAIL orders need a trailing amount (auxPrice) or trailingPercent"
    if order.order_type in ("MOC", "LOC") and inst.sec_type != STOCK:
        return f"{order.order_type} orders are only valid for stocks"
    for price in (order.lmt_price, order.aux_price):
        if valid_price(price) and order.order_type != "TRAIL":
            ticks = price / inst.min_tick
            if abs(ticks - round(ticks)) > 1e-6:
                return (f"The price {price:g} does not conform to the minimum price "
                        f"variation {inst.min_tick:g} for this contract")
    return ""


def _margin(engine: EngineView, order: SimOrder, now: float) -> str:
    inst = order.inst
    held = engine.position_quantity(inst)
    if inst.sec_type == CRYPTO and order.action == "SELL":
        pending = sum(o.remaining for o in engine.open_orders()
                      if o.inst is inst and o.action == "SELL" and o is not order
                      and not o.parent_id)
        if order.quantity > held - pending + 1e-12:
            return "Short sales of crypto currencies are not allowed"
        return ""
    # Only the part that opens or grows a position needs margin.
    closable = max(0.0, -held) if order.action == "BUY" else max(0.0, held)
    opening = max(0.0, order.quantity - closable)
    if opening <= 0:
        return ""
    quote = engine.market.quote(inst.key, now)
    touch = quote.ask if order.action == "BUY" else quote.bid
    px = order.lmt_price if valid_price(order.lmt_price) else touch
    rate = engine.usd_rate(inst.currency, now)
    value = opening * max(px, quote.last) * rate
    # What the trade itself costs (commission, crossing the spread) also leaves
    # the account: the funds available after the fill must stay >= 0.
    cost = engine.commission(inst, opening, px, now) + opening * abs(px - quote.last) * rate
    values = engine.values(now)
    power = values["BuyingPower"]
    if value + 4.0 * cost <= power + 1e-6:
        return ""
    if order.action == "BUY":
        return ("YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN THE DESIRED POSITION "
                "YOUR BUYING POWER MUST EXCEED THE ORDER VALUE "
                f"[{value:.2f} USD > {power:.2f} USD]")
    need = values["InitMarginReq"] + 0.25 * value
    return ("YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN THE DESIRED POSITION YOUR "
            f"EQUITY WITH LOAN VALUE [{values['EquityWithLoanValue']:.2f} USD] MUST EXCEED "
            f"THE INITIAL MARGIN [{need:.2f} USD]")


def validate(engine: EngineView, order: SimOrder, now: float) -> str:
    """Why TWS would reject ``order`` (IB's wording where it matters), or ``""``."""
    if order.account and order.account != engine.account:
        return f"The account {order.account} is not managed by this session"
    problem = _shape(order)
    if problem or order.parent_id:
        return problem
    return _margin(engine, order, now)
