"""Narrow protocols the trading layer is typed against, so nothing imports the class above it.

- :class:`ClientContext`: what the Trader needs of its
  :class:`~ib_nice_funcs.client.Client`. ``client.py`` builds the Trader, so
  importing ``Client`` into trading (even under ``TYPE_CHECKING``) would
  close an import cycle.
- :class:`TraderCoreView`: what the Client Portal failover
  (:mod:`~ib_nice_funcs.trading.failover`) reads of the
  :class:`~ib_nice_funcs.trading._core.TraderCore` that builds it. It names
  the core's private helpers the failover still reaches into; the planned
  router and venues (issue 10, items 2-4) replace it with a narrow venue
  context.

The assembled classes satisfy the protocols as they are.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:  # pragma: no cover
    from .._gateway import IBGateway
    from ..config import Settings
    from ..fleet.guard import FleetGuard
    from .account import DailyBaseline
    from .ledger import OrderLedger
    from .risk import RiskLimits

__all__ = ["ClientContext", "TraderCoreView"]

T = TypeVar("T")


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

    def live_price(self, symbol: Any, source: str = "auto") -> float | None:
        """The streamed price if fresh, else None; never blocks."""
        ...

    def source(self, name: str) -> Any:
        """The data source called ``name`` (the Client Portal's for order failover)."""
        ...


class TraderCoreView(Protocol):
    """The Trader's core as its Client Portal failover sees it (thread side)."""

    settings: Settings
    limits: RiskLimits
    client: ClientContext
    fleet: FleetGuard
    _baseline: DailyBaseline
    _ledger: OrderLedger

    def _run(self, factory: Callable[[], Awaitable[T]], deadline: float, what: str) -> T:
        """Run ``factory()`` on the loop thread; block until done or the deadline."""
        ...

    def _usd_rate(self, currency: str, deadline: float) -> float:
        """USD per unit of ``currency``; 1.0 (logged) when unknown."""
        ...
