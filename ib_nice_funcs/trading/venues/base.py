"""The one shape every venue has, as the router sees it.

Both venues meet :class:`Venue`: :class:`~.tws.TwsVenue` natively (its
coroutines run on the loop thread) and the Client Portal through
:class:`~.portal_failover.PortalFailover`, which runs the blocking
:class:`~.portal.PortalVenue` on a worker thread for one failover (it
carries the TWS failure that sent the call there). The router
(:mod:`ib_nice_funcs.trading.router`) picks one per call; nothing else does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from ...model import CancelAllResult, FlattenReport, OpenOrderRow, OrderResult
    from ...symbols import Instrument
    from ..sizing import PlannedOrder

__all__ = ["Venue"]


class Venue(Protocol):
    """Place, cancel, open orders, positions, account values, getting out.

    Each coroutine is bounded by ``deadline`` (monotonic seconds) and raises
    the :mod:`ib_nice_funcs.errors` types; an order refused before sending
    raises (nothing sent), an order sent returns its result dict.
    """

    name: str

    async def place(self, order: PlannedOrder, deadline: float) -> OrderResult:
        """Place (or find, by client order id) ``order``; its result dict."""
        ...

    async def cancel(self, order_id: int | str, deadline: float) -> OrderResult:
        """Cancel one order by order id or client order id."""
        ...

    async def open_orders(self, deadline: float) -> list[OpenOrderRow]:
        """The account's working orders as summary rows."""
        ...

    async def positions(self, deadline: float, instrument: Instrument | None = None, *,
                        priced: bool = True) -> list[dict[str, Any]]:
        """Non-zero positions as nice_funcs dicts (``instrument``'s only, when given)."""
        ...

    async def account_number(self, tags: tuple[str, ...], deadline: float) -> float | None:
        """The first of ``tags`` (IB's account value names) the account reports."""
        ...

    async def cancel_all(self, deadline: float) -> CancelAllResult:
        """Cancel every working order of the account."""
        ...

    async def close(self, instrument: Instrument, deadline: float, *, cancel: bool,
                    what: str) -> OrderResult:
        """Close the position in ``instrument`` (``cancel``: its orders first)."""
        ...

    async def flatten(self, deadline: float) -> FlattenReport:
        """Cancel every order and close every position (emergency stop)."""
        ...
