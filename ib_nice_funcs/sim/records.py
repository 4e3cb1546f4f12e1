"""The matching engine's records: orders, fills, positions and events (plain dataclasses).

Below :mod:`.matching` and its order rules (:mod:`._order_rules`), which
both use them; it imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .catalog import Instrument

__all__ = ["OPEN_STATES", "Event", "Fill", "Position", "SimOrder"]

OPEN_STATES = ("PendingSubmit", "PreSubmitted", "Submitted")


@dataclass
class SimOrder:
    """One order as the engine tracks it (fields named as IB's Order)."""

    order_id: int
    client_id: int
    perm_id: int
    account: str
    inst: Instrument
    action: str
    quantity: float
    order_type: str
    lmt_price: float | None = None
    aux_price: float | None = None
    trailing_percent: float | None = None
    trail_stop_price: float | None = None
    tif: str = "DAY"
    order_ref: str = ""
    outside_rth: bool = False
    #: bracket parent's order id (0: none); a child works once its parent is filled
    parent_id: int = 0
    #: one-cancels-all group; ``oca_type`` 1 cancels the others on a fill, 2/3 reduce them
    oca_group: str = ""
    oca_type: int = 3
    #: False: held until an order of its bracket (or a modify) is sent with transmit=True
    transmit: bool = True
    extra: dict = field(default_factory=dict)
    status: str = "PendingSubmit"
    filled: float = 0.0
    avg_fill_price: float = 0.0
    last_fill_price: float = 0.0
    submitted_at: float = 0.0
    completed_at: float | None = None
    why_held: str = ""
    _best: float | None = None

    @property
    def remaining(self) -> float:
        return max(0.0, round(self.quantity - self.filled, 10))

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATES

    @property
    def sign(self) -> int:
        return 1 if self.action == "BUY" else -1


@dataclass
class Fill:
    """One execution with its commission (USD) and realized P&L."""

    exec_id: str
    order: SimOrder
    time: float
    shares: float
    price: float
    cum_qty: float
    avg_price: float
    commission: float
    realized_pnl: float

    @property
    def side(self) -> str:
        return "BOT" if self.order.action == "BUY" else "SLD"


@dataclass
class Position:
    """A position; ``avg_cost`` includes commissions, as IB reports it."""

    inst: Instrument
    quantity: float = 0.0
    avg_cost: float = 0.0
    realized: float = 0.0


@dataclass
class Event:
    """What happened: ``kind`` is ``status``, ``fill``, ``error`` or ``account``."""

    kind: str
    order: SimOrder | None = None
    fill: Fill | None = None
    code: int = 0
    message: str = ""
    order_id: int = -1
    client_id: int = -1
    #: order state when the event happened (status, filled, remaining, avg, last)
    snapshot: tuple = ()

    def __post_init__(self) -> None:
        o = self.order
        if o is not None and not self.snapshot:
            self.snapshot = (o.status, o.filled, o.remaining, o.avg_fill_price,
                             o.last_fill_price)
