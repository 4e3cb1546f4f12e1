"""The router: the one place that decides where an order or a read goes.

Every trading operation asks the router, and only the router knows the
failover policy:

* Without ``order_failover`` (the default) everything goes to TWS / IB
  Gateway (:class:`~.venues.tws.TwsVenue`); an unreachable gateway raises
  ConnectionFailedError.
* With ``order_failover`` on and a Client Portal URL, an order TWS refused
  before anything was sent goes to the Client Portal
  (:class:`~.venues.portal.PortalVenue`) at once. Otherwise TWS gets
  :data:`FAILOVER_SHARE` of the time to acknowledge it and
  the portal keeps the rest.
* Never twice: one lock per client order id covers both venues; before a TWS
  attempt the portal's record of the id is consulted, and after a TWS
  attempt that may have sent the order the portal is only asked whether it
  arrived (an id TWS may still deliver is never placed through the portal).
* Reads (positions, account values, open orders) and cancels that TWS
  cannot serve are asked of the portal; closing (kill switch, close,
  emergency stop) runs through the portal when TWS was refused before
  anything was sent over it.
* The fleet: ``emergency_stop`` latches the account's halt first, on either
  venue; opening orders meet the halt, the account-wide lock and the other
  processes' working orders inside the venues' risk steps.

Both venues have one shape (:class:`~.venues.base.Venue`); the Client
Portal's for one failover is a :class:`~.venues.portal_failover.PortalFailover`
that carries the TWS failure that sent the call there.

Threading contract: every method is a coroutine for the package's loop
thread. The Client Portal venue blocks (HTTP), so its calls run on a worker
thread the router awaits. Each method is bounded by its ``deadline``
(monotonic seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import (
    ConnectionFailedError,
    IBNiceFuncsError,
    OrderRejectedError,
    RequestTimeoutError,
)
from ..trade_journal.recorder import journaled
from .context import GRACE_S
from .results import UNKNOWN, carry_result
from .venues.portal_failover import PortalFailover

if TYPE_CHECKING:  # pragma: no cover
    from ..model import CancelAllResult, FlattenReport, OpenOrderRow, OrderResult
    from ..symbols import Instrument
    from .context import TradingContext
    from .sizing import PlannedOrder
    from .venues.base import Venue
    from .venues.portal import PortalVenue
    from .venues.portal_closing import PortalClosing
    from .venues.tws import TwsVenue

__all__ = ["OrderRouter", "raise_for", "FAILOVER_SHARE"]

log = logging.getLogger("ib_nice_funcs")
T = TypeVar("T")

#: Share of an order's time budget the TWS attempt may spend before the order is
#: acknowledged; the rest is kept for the portal (its live-orders look-up alone
#: may wait up to 5 s for its rate-limit slot at IB's 1 request per 5 s).
FAILOVER_SHARE = 0.5


def raise_for(result: OrderResult, what: str) -> OrderResult:
    """Return ``result`` when it succeeded; else raise the matching error.

    The raised error carries the result dict as ``exc.result`` so that the
    module-level functions can return it.
    """
    if result.get("success"):
        return result
    status = result.get("status")
    if status in ("PendingSubmit", UNKNOWN):
        exc: IBNiceFuncsError = RequestTimeoutError(
            f"{what}: {result.get('error') or 'no acknowledgement from IB'}"
        )
    else:
        code = result.get("code")
        exc = OrderRejectedError(
            f"{what}: {'IB error ' + str(code) + ': ' if code else ''}"
            f"{result.get('error') or 'the order ended ' + str(status)}",
            code,
        )
    carry_result(exc, result)
    raise exc


def _ack_deadline(deadline: float) -> float:
    """When the TWS attempt must have its acknowledgement (failover on)."""
    now = time.monotonic()
    return now + max(0.0, deadline - now) * FAILOVER_SHARE


class OrderRouter:
    """Sends each trading operation to TWS or, on failover, to the Client Portal.

    See the module docstring for the policy and the threading contract.
    """

    def __init__(self, ctx: TradingContext, tws: TwsVenue, portal: PortalVenue,
                 portal_closing: PortalClosing) -> None:
        self.ctx = ctx
        self.tws = tws
        self.portal = portal
        self.portal_closing = portal_closing
        #: One lock per client order id in use across both venues (loop side).
        self._held: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    async def within(work: Awaitable[T], deadline: float, what: str) -> T:
        """Await ``work`` until the deadline (+grace); RequestTimeoutError after it."""
        try:
            return await asyncio.wait_for(work, max(0.05, deadline - time.monotonic()) + GRACE_S)
        except (asyncio.TimeoutError, TimeoutError):
            raise RequestTimeoutError(
                f"{what} got no answer in time; the gateway may be busy or unreachable: check "
                "it, or raise the timeout (IB_NICE_FUNCS_TIMEOUT)") from None
        except ConnectionError as exc:  # ib_async's "Not connected" / "Socket disconnect"
            raise ConnectionFailedError(f"{what}: the connection to IB dropped ({exc})") from None

    def _portal(self, cause: BaseException) -> Venue:
        """The Client Portal for calls TWS failed with ``cause``; re-raises it when off."""
        if not self.portal.active:
            raise cause
        return PortalFailover(self.portal, self.portal_closing, cause)

    @contextlib.asynccontextmanager
    async def _hold(self, client_order_id: str, deadline: float) -> AsyncIterator[None]:
        """Serialise every placement of one client order id, on either venue.

        Raises:
            RequestTimeoutError: another call with the same id held it until the deadline.
        """
        lock, users = self._held.setdefault(client_order_id, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            try:
                await asyncio.wait_for(lock.acquire(), max(0.0, deadline - time.monotonic()))
            except (asyncio.TimeoutError, TimeoutError):
                raise RequestTimeoutError(
                    f"order {client_order_id}: another call with this client order id was "
                    "still running at the timeout; nothing was sent by this one") from None
            try:
                yield
            finally:
                lock.release()
        finally:
            users[0] -= 1
            if users[0] == 0:
                self._held.pop(client_order_id, None)

    # -- where to -------------------------------------------------------------------------

    async def account(self, deadline: float) -> str:
        """The TWS account orders go to, after the live-account guard (may connect).

        Raises:
            LiveTradingDisabledError: a live account without allow_live (nothing sent).
            ConfigurationError: several accounts and none chosen.
            ConnectionFailedError, RequestTimeoutError: the gateway is unreachable.
        """
        return await self.within(self.ctx.trading_account(), deadline, "trading permission check")

    async def route(self, deadline: float) -> str | ConnectionFailedError:
        """Like :meth:`account`, but an unreachable TWS is returned, not raised, when
        orders may fail over to the Client Portal.

        Raises:
            ConnectionFailedError: TWS is unreachable and failover is off.
            Otherwise like :meth:`account`.
        """
        try:
            return await self.account(deadline)
        except ConnectionFailedError as exc:
            if not self.portal.active:
                raise
            return exc

    async def _venue(self, deadline: float) -> Venue:
        """TWS when it takes orders, else (failover on) the Client Portal."""
        route = await self.route(deadline)
        return self._portal(route) if isinstance(route, ConnectionFailedError) else self.tws

    async def _read(self, op: Callable[[Venue], Awaitable[T]], deadline: float, what: str) -> T:
        """``op`` on TWS; on a TWS failure, on the Client Portal (failover on) or raised."""
        try:
            result = await self.within(op(self.tws), deadline, what)
        except ConnectionFailedError as exc:
            return await op(self._portal(exc))
        self.portal.note_up()
        return result

    async def _getting_out(self, op: Callable[[Venue], Awaitable[T]], deadline: float,
                           what: str, *, repeatable: bool) -> T:
        """``op`` after the live-account guard, on the venue :meth:`_venue` picks.

        ``repeatable``: a TWS failure mid-way may be retried on the Client
        Portal (a cancel the gateway got first is simply gone); a close is not
        (it may have been sent).
        """
        venue = await self._venue(deadline)
        if venue is not self.tws:
            return await op(venue)
        try:
            return await self.within(op(venue), deadline, what)
        except ConnectionFailedError as exc:
            if not repeatable:
                raise
            return await op(self._portal(exc))

    # -- orders ---------------------------------------------------------------------------

    @journaled
    async def place(self, order: PlannedOrder, deadline: float,
                    tws_down: ConnectionFailedError | None = None) -> OrderResult:
        """Place (or find) ``order`` on the venue the policy picks; the result or an error.

        ``tws_down``: TWS was found unreachable before anything was sent
        (order failover on): the order goes to the Client Portal at once.

        Raises:
            LiveTradingDisabledError, RiskLimitError, NoPositionError,
            OrderSizeError, TradingHaltedError: refused before sending.
            OrderRejectedError: rejected (``exc.result``).
            ConnectionFailedError, RequestTimeoutError: the venues failed; when
                the order may have been sent, ``exc.result`` says Unknown.
        """
        if not self.portal.active:
            return raise_for(await self._place_tws(order, deadline), order.what)
        portal = self.portal
        async with self._hold(order.client_order_id, deadline):
            if tws_down is not None:
                return raise_for(await self._portal(tws_down).place(order, deadline), order.what)
            # What the portal side holds under the id, if anything (an Unknown result
            # when it cannot tell: the TWS attempt then returns it instead of sending).
            elsewhere = await PortalFailover.off_the_loop(
                lambda: portal.resolve(order.client_order_id, deadline))
            try:
                result = await self.within(
                    self.tws.place(order, deadline, ack_deadline=_ack_deadline(deadline),
                                   placed_elsewhere=elsewhere),
                    deadline, order.what)
            except (RequestTimeoutError, ConnectionFailedError) as exc:
                # Before the send the order fails over; after it, the portal is only
                # asked whether the order arrived (the portal venue reads the ledger).
                result = await self._portal(exc).place(order, deadline)
            else:
                if result.get("ib_status") == "PendingSubmit" and not result.get("success"):
                    result = await self._portal(RequestTimeoutError(
                        f"{order.what}: IB did not acknowledge the order in time")
                    ).place(order, deadline)
                elif result.get("source") != "portal":
                    portal.note_up()
        return raise_for(result, order.what)

    async def _place_tws(self, order: PlannedOrder, deadline: float) -> OrderResult:
        """The TWS-only path (order failover off)."""
        try:
            return await self.within(self.tws.place(order, deadline), deadline, order.what)
        except (RequestTimeoutError, ConnectionFailedError) as exc:
            # A drop is reported by the venue (the ledger then says whether it was
            # sent); a timeout cuts the pipeline off at any point, possibly just after
            # the send, so the order's fate is unknown either way.
            if not hasattr(exc, "result") and (
                    isinstance(exc, RequestTimeoutError)
                    or order.client_order_id in self.ctx.ledger):
                carry_result(exc, self.tws.unknown(order, str(exc)))
            raise

    async def cancel(self, order_id: int | str, deadline: float) -> OrderResult:
        """Cancel one order: TWS, else (failover on) the Client Portal."""
        return await self._getting_out(lambda v: v.cancel(order_id, deadline), deadline,
                                       f"cancel_order({order_id!r})", repeatable=True)

    # -- reads ----------------------------------------------------------------------------

    async def open_orders(self, deadline: float) -> list[OpenOrderRow]:
        """Every open order on the account (TWS; the portal's while TWS is down)."""
        return await self._read(lambda v: v.open_orders(deadline), deadline, "open orders")

    async def positions(self, deadline: float, instrument: Instrument | None = None, *,
                        priced: bool = True) -> list[dict[str, Any]]:
        """Non-zero positions as nice_funcs dicts (TWS; the portal's while TWS is down)."""
        return await self._read(lambda v: v.positions(deadline, instrument, priced=priced),
                                deadline, "positions")

    async def account_number(self, tags: tuple[str, ...], deadline: float) -> float | None:
        """The first of ``tags`` the account reports (TWS; the portal's while TWS is down)."""
        return await self._read(lambda v: v.account_number(tags, deadline), deadline, tags[0])

    async def risk_snapshot(self, deadline: float) -> Any:
        """What the risk check sees now (TWS; read-only)."""
        return await self.within(self.tws.account.risk_snapshot(), deadline, "risk snapshot")

    # -- getting out ----------------------------------------------------------------------

    async def cancel_all(self, deadline: float) -> CancelAllResult:
        """Every open order of the account, any client's."""
        return await self._getting_out(lambda v: v.cancel_all(deadline), deadline, "cancel_all",
                                       repeatable=True)

    async def close(self, instrument: Instrument, deadline: float, *, cancel: bool,
                    what: str) -> OrderResult:
        """``close_position`` (``cancel`` False) or ``kill_switch`` (True); result or error."""
        result = await self._getting_out(
            lambda v: v.close(instrument, deadline, cancel=cancel, what=what), deadline, what,
            repeatable=False)
        return raise_for(result, what)

    async def emergency_stop(self, deadline: float) -> FlattenReport:
        """Latch the fleet's halt, then cancel and flatten everything (TWS, else the portal)."""
        route = await self.route(deadline)
        await self._latch_halt(route, deadline)
        if isinstance(route, ConnectionFailedError):
            return await self._portal(route).flatten(deadline)
        return await self.within(self.tws.flatten(deadline), deadline, "emergency_stop")

    async def _latch_halt(self, route: str | ConnectionFailedError, deadline: float) -> None:
        """Latch the fleet's halt for the account (before anything is cancelled)."""
        account = route if isinstance(route, str) else self.ctx.known_account()
        if account:
            await self.within(self.ctx.fleet.halt(account), deadline, "halt the fleet")
        else:
            log.warning("emergency_stop: the account is not known yet, so no halt was latched "
                        "for the other agent processes; set IB_ACCOUNT")
