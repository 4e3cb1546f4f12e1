"""The Client Portal venue for one failover, in the :class:`~.base.Venue` shape.

:class:`PortalFailover` carries the TWS failure that sent a call here (the
portal's messages name it, and a venue that is switched off re-raises it)
and runs each blocking :class:`~.portal.PortalVenue` /
:class:`~.portal_closing.PortalClosing` call on a daemon thread, so the
loop thread that awaits it keeps serving everything else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..._loop import in_daemon_thread
from ..contracts import is_instrument
from ..position_rows import with_perp_keys

if TYPE_CHECKING:  # pragma: no cover
    from ...model import CancelAllResult, FlattenReport, OpenOrderRow, OrderResult
    from ...symbols import Instrument
    from ..sizing import PlannedOrder
    from .portal import PortalVenue
    from .portal_closing import PortalClosing

__all__ = ["PortalFailover"]

T = TypeVar("T")


class PortalFailover:
    """The Client Portal as a :class:`~.base.Venue`, for calls TWS failed with ``cause``."""

    name = "portal"

    @staticmethod
    async def off_the_loop(call: Callable[[], T]) -> T:
        """Await a blocking Client Portal call run on a daemon thread (bounded by its timeout)."""
        return await in_daemon_thread(call, name="ib-nice-funcs-portal")

    def __init__(self, venue: PortalVenue, closing: PortalClosing, cause: BaseException) -> None:
        self.venue = venue
        self.closing = closing
        self.cause = cause

    async def place(self, order: PlannedOrder, deadline: float) -> OrderResult:
        return await self.off_the_loop(lambda: self.venue.place(order, self.cause, deadline))

    async def cancel(self, order_id: int | str, deadline: float) -> OrderResult:
        return await self.off_the_loop(lambda: self.venue.cancel(order_id, self.cause, deadline))

    async def open_orders(self, deadline: float) -> list[OpenOrderRow]:
        return await self.off_the_loop(lambda: self.venue.open_orders(self.cause, deadline))

    async def positions(self, deadline: float, instrument: Instrument | None = None, *,
                        priced: bool = True) -> list[dict[str, Any]]:
        rows = await self.off_the_loop(lambda: self.venue.positions(self.cause, deadline))
        return [with_perp_keys(row) for row in rows if row["quantity"] and (
            instrument is None
            or is_instrument(instrument, row.get("con_id"), row.get("symbol")))]

    async def account_number(self, tags: tuple[str, ...], deadline: float) -> float | None:
        return await self.off_the_loop(
            lambda: self.venue.account_number(tags, self.cause, deadline))

    async def cancel_all(self, deadline: float) -> CancelAllResult:
        return await self.off_the_loop(lambda: self.closing.cancel_all(self.cause, deadline))

    async def close(self, instrument: Instrument, deadline: float, *, cancel: bool,
                    what: str) -> OrderResult:
        return await self.off_the_loop(lambda: self.closing.close(
            instrument, self.cause, deadline, cancel=cancel, what=what))

    async def flatten(self, deadline: float) -> FlattenReport:
        return await self.off_the_loop(lambda: self.closing.emergency_stop(self.cause, deadline))
