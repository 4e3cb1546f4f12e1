"""What the trading rooms share, passed down once: the narrow context.

- :class:`ClientContext`: what trading needs of its
  :class:`~ib_nice_funcs.client.Client` (a protocol: ``client.py`` builds the
  Trader, so importing ``Client`` here would close an import cycle).
- :class:`TradingContext`: built once by :mod:`~ib_nice_funcs.trading.trader`
  and handed to the router, both venues and the public desks. It holds the
  state that must stay consistent across calls and reconnects (the
  client-order-id ledger, contract rules, the daily-P&L baseline, the fleet
  guard, the journal) and the few account and price look-ups every room
  needs. Nobody reaches into anybody else's private names.

Threading contract: the coroutines and all mutable state here belong to the
package's loop thread; :meth:`TradingContext.run` is the one bridge a
blocking caller (the Client Portal venue's worker thread) uses to cross in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..errors import IBNiceFuncsError
from .account import DailyBaseline, check_live_allowed, pick_account, trading_day

if TYPE_CHECKING:  # pragma: no cover
    from .._gateway import IBGateway
    from ..config import Settings
    from ..fleet.guard import FleetGuard
    from ..symbols import Instrument
    from ..trade_journal.recorder import JournalRecorder
    from .contracts import ContractRules
    from .ledger import OrderLedger
    from .risk import RiskLimits

__all__ = ["ClientContext", "TradingContext", "GRACE_S"]

log = logging.getLogger("ib_nice_funcs")
T = TypeVar("T")

#: Extra seconds a thread-side wait allows beyond the call's own deadline, so
#: the loop side can finish with a proper result instead of being cut off.
GRACE_S = 1.0


class ClientContext(Protocol):
    """The Client as the Trader, its venues and its journal see it."""

    settings: Settings

    @property
    def gateway(self) -> IBGateway:
        """The IB connection manager (raises once the client is closed)."""
        ...

    def resolve_timeout(self, timeout: float | None) -> float:
        """Seconds for a call: ``timeout``, or the ``timeout`` setting when None."""
        ...

    def price(self, symbol: Any, source: str = "auto", timeout: float | None = None) -> float:
        """The current price of one instrument (blocks up to ``timeout``)."""
        ...

    async def price_async(self, symbol: Any, source: str = "auto",
                          timeout: float | None = None) -> float:
        """:meth:`price` as a coroutine (awaitable on the loop thread too)."""
        ...

    def live_price(self, symbol: Any, source: str = "auto") -> float | None:
        """The streamed price if fresh, else None; never blocks."""
        ...

    def source(self, name: str) -> Any:
        """The data source called ``name`` (the Client Portal's for order failover)."""
        ...


class TradingContext:
    """The state and look-ups the trading rooms share (see the module docstring)."""

    def __init__(self, client: ClientContext, *, limits: RiskLimits, fleet: FleetGuard,
                 journal: JournalRecorder, ledger: OrderLedger, contracts: ContractRules) -> None:
        self.client = client
        self.settings: Settings = client.settings
        self.gateway: IBGateway = client.gateway
        self.limits = limits
        self.fleet = fleet
        self.journal = journal
        self.ledger = ledger
        self.contracts = contracts
        #: Today's start value (shared with the fleet's other processes): loop side.
        self.baseline = DailyBaseline()

    # -- time ----------------------------------------------------------------------------

    def deadline(self, timeout: float | None) -> float:
        """Monotonic deadline for a call; ``timeout`` None means the setting.

        Raises:
            ValueError, TypeError: a malformed timeout.
        """
        return time.monotonic() + self.client.resolve_timeout(timeout)

    def run(self, factory: Callable[[], Awaitable[T]], deadline: float, what: str) -> T:
        """Run ``factory()`` on the loop thread; block until done or the deadline (+grace).

        Thread side only (never the loop thread).

        Raises:
            RequestTimeoutError: no answer by the deadline.
            ConnectionFailedError, IBNiceFuncsError: as the coroutine raised them.
        """
        remaining = max(0.05, deadline - time.monotonic())
        return self.gateway.call(factory, remaining + GRACE_S, what)

    # -- account -------------------------------------------------------------------------

    async def trading_account(self) -> str:
        """The account orders go to, after the live-account guard (connects if needed).

        Raises:
            LiveTradingDisabledError: a live account without allow_live (nothing sent).
            ConfigurationError: several accounts and none chosen.
            ConnectionFailedError: the gateway is unreachable.
        """
        configured = self.settings.account
        if configured:
            # Refuse before even connecting when the setting already says "live".
            check_live_allowed(configured, self.settings.allow_live)
        await self.gateway.ib_async()
        account = pick_account(self.gateway.account, self.gateway.managed_accounts)
        check_live_allowed(account, self.settings.allow_live)
        return account

    def data_account(self) -> str | None:
        """The account data calls filter on (None: all the login manages)."""
        try:
            return pick_account(self.gateway.account, self.gateway.managed_accounts)
        except IBNiceFuncsError:
            return None

    def known_account(self) -> str | None:
        """The account if configured or already learnt from the gateway (no I/O)."""
        return self.settings.account or self.gateway.account or None

    async def daily_pnl_baseline(self, account: str, net_liquidation: float,
                                 ib_daily_pnl: float | None) -> float:
        """Today's P&L against the fleet's one day-start value (loop side)."""
        today = trading_day(self.settings.clock())
        if self.baseline.day != today:
            # One baseline for every process of the account: the first one's.
            self.baseline.day = today
            self.baseline.start_value = await self.fleet.day_start(
                account, today.isoformat(), net_liquidation)
        return self.baseline.pnl(net_liquidation, today, ib_daily_pnl)

    # -- prices --------------------------------------------------------------------------

    async def price(self, symbol: Any, deadline: float) -> float:
        """Current price for sizing (any configured source; orders still go only to IB)."""
        return await self.client.price_async(symbol, timeout=max(0.1, deadline - time.monotonic()))

    async def usd_rate(self, currency: str, deadline: float) -> float:
        """USD per unit of ``currency`` from IB's quotes; 1.0 (logged) when unknown."""
        currency = (currency or "USD").upper()
        if currency == "USD":
            return 1.0
        timeout = max(0.5, deadline - time.monotonic())
        for pair, invert in ((f"{currency}USD", False), (f"USD{currency}", True)):
            try:
                px = await self.client.price_async(pair, timeout=timeout)
            except (IBNiceFuncsError, ValueError, asyncio.TimeoutError):
                continue
            if px > 0:
                return 1.0 / px if invert else px
        log.warning("no USD rate for %s; risk limits treat its prices as USD", currency)
        return 1.0

    async def usd_per_unit(self, instrument: Instrument, price: float, deadline: float) -> float:
        """USD value of one unit of ``instrument`` at ``price`` (quote currency converted)."""
        if instrument.asset_class == "fx" and instrument.ib_symbol == "USD":
            return 1.0
        return price * await self.usd_rate(instrument.currency, deadline)
