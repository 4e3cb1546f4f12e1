"""The one place the public Trader is assembled.

::

    Trader = OrderDesk + ClosingDesk + PositionDesk      (thin public methods)
               |  validate -> price -> PlannedOrder
               v
           OrderRouter                                   (the failover policy, once)
               |
        TwsVenue / TwsClosing  (loop thread, async)  |  PortalVenue / PortalClosing (blocking HTTP)

A market order, from ``market_buy`` to the wire: :mod:`.orders`
(``market_buy`` -> ``_buy_usd``) -> :mod:`.router` (``OrderRouter.place``) ->
:mod:`.venues.tws` (``TwsVenue.place`` -> ``send`` -> ``build_ib_order`` ->
``placeOrder``), with the request, its order-type row and the result type
from :mod:`ib_nice_funcs.model`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..fleet.guard import FleetGuard
from ..trade_journal.recorder import JournalRecorder
from .closing import ClosingDesk
from .context import TradingContext
from .contracts import ContractRules
from .ledger import OrderLedger
from .orders import OrderDesk
from .positions import PositionDesk
from .risk import PortfolioSnapshot, RiskLimits
from .router import OrderRouter
from .venues.portal import PortalVenue
from .venues.portal_closing import PortalClosing
from .venues.tws import TwsVenue
from .venues.tws_closing import TwsClosing

if TYPE_CHECKING:  # pragma: no cover
    from .context import ClientContext

__all__ = ["Trader"]


class Trader(OrderDesk, ClosingDesk, PositionDesk):
    """Orders, positions, account values and kill switches for one :class:`Client`.

    Get it as ``client.trading`` (one per Client). Orders go through the IB
    gateway (never yfinance); with ``order_failover`` on, through the Client
    Portal while TWS / IB Gateway is down, with the same client order id (see
    :mod:`ib_nice_funcs.trading.router`). Results from the portal carry
    ``"source": "portal"``.

    Threading contract: every public method may be called from any thread
    (a script, a Jupyter cell, a web handler), concurrently, but not from the
    package's event-loop thread. Each blocks its caller for at most its
    ``timeout`` (default: the ``timeout`` setting; ``emergency_stop`` three
    times that) while the work runs on the loop thread, where its
    ``*_async`` twin (a coroutine; ``ib_nice_funcs.aio`` awaits these) and
    all of the Trader's state (the client-order-id ledger, contract rules,
    the daily P&L baseline) live.

    Errors: ValueError / TypeError for bad arguments (nothing sent);
    LiveTradingDisabledError, RiskLimitError, NoPositionError, OrderSizeError,
    TradingHaltedError when an order is refused before sending;
    OrderRejectedError when IB rejects or cancels it; ConnectionFailedError /
    RequestTimeoutError when the gateway fails. Errors raised after an order
    was sent carry the result dict as ``exc.result``.
    """

    def __init__(self, client: ClientContext) -> None:
        settings = client.settings
        gateway = client.gateway
        limits = RiskLimits(
            max_position_usd=settings.max_position_usd,
            max_daily_loss_usd=settings.max_daily_loss_usd,
            max_exposure_usd=settings.max_exposure_usd,
            pdt_guard=settings.pdt_guard,
        )
        ctx = TradingContext(
            client, limits=limits, fleet=FleetGuard(settings),
            journal=JournalRecorder(settings, settings.client_id, client),
            ledger=OrderLedger(), contracts=ContractRules(gateway))
        tws = TwsVenue(ctx)
        portal = PortalVenue(ctx, tws)
        super().__init__(ctx, OrderRouter(ctx, tws, TwsClosing(tws), portal,
                                          PortalClosing(portal)))
        self.client = client
        self.settings = settings
        self.gateway = gateway
        self.limits = limits
        #: The state shared with the account's other agent processes (halt, risk
        #: lock, client order id claims, day-start value): loop side.
        self.fleet = ctx.fleet
        #: The trade journal: told of every order sent, refused or failed over.
        self.journal = ctx.journal

    def __repr__(self) -> str:
        return f"Trader({self.client!r})"

    def budget(self, method: str, timeout: float | None = None) -> float:
        """Seconds the public ``method`` may take with ``timeout`` (for a caller's bridge).

        ``emergency_stop`` gets three times the setting by default and
        ``chunk_kill`` its whole chunked budget; the rest their ``timeout``.

        Raises:
            ValueError, TypeError: a malformed timeout.
        """
        if method == "emergency_stop":
            return self._stop_budget(timeout)
        if method == "chunk_kill":
            per_child = self._seconds(timeout)
            return self._chunk_budget(per_child) + per_child
        return self._seconds(timeout)

    async def risk_snapshot_async(self, *, timeout: float | None = None) -> PortfolioSnapshot:
        """:meth:`risk_snapshot` as a coroutine for the loop thread."""
        return await self.router.risk_snapshot(self.ctx.deadline(timeout))

    def risk_snapshot(self, *, timeout: float | None = None) -> PortfolioSnapshot:
        """What the risk check sees now: positions in USD, net liquidation, daily P&L,
        day trades; for dashboards (read-only: no live-account guard, nothing sent).

        Blocks up to ``timeout`` seconds (default: the ``timeout`` setting).

        Raises:
            ConnectionFailedError, RequestTimeoutError: the gateway failed.
            IBNiceFuncsError: IB reports no net liquidation.
        """
        return self._block(lambda: self.risk_snapshot_async(timeout=timeout),
                           self._seconds(timeout), "risk snapshot")
