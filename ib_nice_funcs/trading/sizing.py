"""How an order is sized, and the planned order the router passes to a venue.

Pure functions, no I/O: a public helper validates its arguments, prices the
instrument once, and builds one :class:`PlannedOrder`; the router hands that
same object to the TWS venue and, on failover, to the Client Portal venue.
Each venue sizes it with the contract rules it knows
(:class:`~ib_nice_funcs.trading.contracts.ContractSpec`) and the position it
sees, through :attr:`PlannedOrder.sizer`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import NoPositionError, OrderSizeError
from ..model import OrderRequest
from ..symbols import Instrument
from .contracts import ContractSpec
from .results import is_multiple, round_quantity
from .validation import MAX_QUANTITY, quantity_for_usd

__all__ = ["Sizer", "PlannedOrder", "usd_sizer", "percent_sizer", "quantity_sizer"]


@dataclass(frozen=True)
class Sizer:
    """How an order helper sizes its order, on either venue.

    Attributes:
        size: ``(spec, held) -> quantity``; ``held`` is the account's long
            quantity of the instrument (0.0 unless ``needs_held``). Raises
            OrderSizeError / NoPositionError / ValueError (nothing is sent).
        needs_held: The size depends on the position held (percentage sells).
    """

    size: Callable[[ContractSpec, float], float]
    needs_held: bool = False


@dataclass(frozen=True)
class PlannedOrder:
    """One validated order on its way to a venue; built once, passed down unchanged.

    Attributes:
        instrument: What is traded.
        request: The validated order (side, type, prices, tif, client order id).
        sizer: How the venue turns the contract rules into a quantity.
        unit_usd: USD value of one unit at the order's reference price (None:
            a sell of a held position, valued at IB's mark).
        explicit_id: The caller chose the client order id (look it up everywhere first).
        wait: Wait for the fill / acceptance (False: return once sent).
        what: The call as the caller wrote it, for messages and logs.
    """

    instrument: Instrument
    request: OrderRequest
    sizer: Sizer
    unit_usd: float | None
    explicit_id: bool
    wait: bool
    what: str

    @property
    def client_order_id(self) -> str:
        return self.request.client_order_id


def usd_sizer(usd: float, unit_usd: float, price: float, what: str) -> Sizer:
    """Size ``usd`` dollars at ``unit_usd`` per unit, rounded down to the size increment."""

    def size(spec: ContractSpec, held: float) -> float:
        qty = quantity_for_usd(usd, unit_usd * spec.multiplier, spec.size_increment, spec.min_size)
        if qty <= 0:
            raise OrderSizeError(
                f"{what}: ${usd:,.2f} is less than the smallest size of {spec.symbol} "
                f"({spec.min_size:g} at {price:,.6g}); nothing was sent. Raise usd_amount"
            )
        if qty > MAX_QUANTITY:
            raise OrderSizeError(
                f"{what}: ${usd:,.2f} at {price:,.6g} is {qty:.3g} {spec.symbol}, more than "
                f"the {MAX_QUANTITY:g} units allowed in one order; nothing was sent"
            )
        return qty

    return Sizer(size)


def percent_sizer(pct: float, what: str) -> Sizer:
    """Size ``pct`` percent of the long position held (100: all of it)."""

    def size(spec: ContractSpec, held: float) -> float:
        if held <= 0:
            raise NoPositionError(
                f"{what}: the account holds no long position in {spec.symbol}; nothing was sent"
            )
        qty = held if pct >= 100 else round_quantity(held * pct / 100.0, spec.size_increment)
        if qty <= 0 or qty < spec.min_size:
            raise OrderSizeError(
                f"{what}: {pct:g}% of {held:g} {spec.symbol} is below the smallest size "
                f"({spec.min_size:g}); nothing was sent"
            )
        return qty

    return Sizer(size, needs_held=True)


def quantity_sizer(quantity: float, given: object) -> Sizer:
    """The quantity as given, which must fit the contract's size rules (ValueError if not)."""

    def size(spec: ContractSpec, held: float) -> float:
        if not is_multiple(quantity, spec.size_increment) or quantity < spec.min_size:
            raise ValueError(
                f"quantity={given!r} is not allowed for {spec.symbol}: it must be a "
                f"multiple of {spec.size_increment:g} and at least {spec.min_size:g}"
            )
        return quantity

    return Sizer(size)
