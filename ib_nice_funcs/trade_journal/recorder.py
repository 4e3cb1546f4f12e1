"""The journal's recorder: the one object the trading layer tells about its orders.

The trading layer calls it at four named points and nowhere else:

- :func:`journaled` wraps the router's ``OrderRouter.place``: it notes the
  arrival price (the quote when the order was decided) and records refusals
  and failovers;
- :meth:`JournalRecorder.sent` from ``TwsVenue.send`` (every order to TWS);
- :meth:`JournalRecorder.watch` from ``TwsVenue.follow`` (once per session):
  status changes, fills and commission reports of the orders it sent.

Rows go to a :class:`~ib_nice_funcs.trade_journal.writer.JournalWriter`, which
writes on its own thread: recording never blocks and never raises into an
order.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from cachetools import LRUCache

from .store import default_agent, resolve_path
from .writer import JournalWriter, writer_for

if TYPE_CHECKING:  # pragma: no cover
    from ib_async import IB, Trade

    from ..config import Settings
    from ..model import OrderRequest

__all__ = ["JournalRecorder", "journaled", "slippage_bps", "refusal_reason"]

log = logging.getLogger("ib_nice_funcs")
F = TypeVar("F", bound=Callable[..., Any])

#: Longest the arrival-price quote may hold up an order that has none yet.
_ARRIVAL_QUOTE_S = 1.0
#: Orders of this process the recorder remembers (their fills and statuses are
#: recorded; an order older than this many later ones is no longer followed).
_KEEP_ORDERS = 10_000


def slippage_bps(side: str, arrival: float | None, price: float | None) -> float | None:
    """Slippage of a fill at ``price`` against ``arrival``, in basis points; positive = adverse.

    A buy above the arrival price or a sell below it is adverse. None when
    either price is missing or not positive.
    """
    if not arrival or not price or arrival <= 0 or price <= 0:
        return None
    sign = 1.0 if side.upper() in ("BUY", "BOT") else -1.0
    return sign * (price - arrival) / arrival * 10_000.0


def refusal_reason(exc: BaseException) -> str:
    """A short, groupable code for why an order was refused or failed."""
    from ..errors import (
        ConnectionFailedError,
        LiveTradingDisabledError,
        NoPositionError,
        OrderRejectedError,
        OrderSizeError,
        RequestTimeoutError,
        RiskLimitError,
    )

    if isinstance(exc, RiskLimitError):
        breach = getattr(exc, "breach", None)
        limit = getattr(breach, "limit", None)
        return f"risk:{limit}" if limit else "risk"
    if isinstance(exc, OrderRejectedError):
        code = getattr(exc, "code", None)
        return f"rejected:{code}" if code else "rejected"
    for kind, code in (
        (LiveTradingDisabledError, "live_disabled"),
        (NoPositionError, "no_position"),
        (OrderSizeError, "size"),
        (RequestTimeoutError, "timeout"),
        (ConnectionFailedError, "connection"),
        (ValueError, "invalid"),
        (TypeError, "invalid"),
    ):
        if isinstance(exc, kind):
            return code
    return type(exc).__name__


class JournalRecorder:
    """Turns a Trader's order events into journal rows (a no-op when the journal is off).

    Threading contract: the order path runs on the loop thread; the small
    shared map of this process's orders is guarded by a lock, since the
    heartbeat reads it from its own thread. No method blocks or raises.
    """

    def __init__(self, settings: Settings, client_id: int | None = None,
                 client: Any = None) -> None:
        path = resolve_path(settings.journal)
        #: The Client whose market-data lines, pacing and connection the heartbeat reports.
        self.client = client
        self.writer: JournalWriter | None = writer_for(path) if path is not None else None
        self.agent = settings.agent or default_agent()
        self.client_id = client_id
        self._clock = settings.clock
        self._lock = threading.Lock()
        #: client order id -> what the journal knows of it (symbol, side, arrival...);
        #: the most recent orders only, so a long-running agent's memory stays flat.
        self._orders: LRUCache[str, dict[str, Any]] = LRUCache(maxsize=_KEEP_ORDERS)
        self._status: LRUCache[str, str] = LRUCache(maxsize=_KEEP_ORDERS)
        self._watched: Any = None
        #: Set from ib_async's connect / disconnect events (loop thread); read by the heartbeat.
        self._connected = False

    @property
    def enabled(self) -> bool:
        return self.writer is not None

    def _put(self, kind: str, **fields: Any) -> None:
        if self.writer is None:
            return
        try:
            row = {"ts": float(self._clock()), "kind": kind, "agent": self.agent,
                   "pid": os.getpid(), "client_id": self.client_id, **fields}
            self.writer.put(row)
        except Exception:  # noqa: BLE001 - the journal must never fail an order
            log.debug("journal row %s dropped", kind, exc_info=True)

    def _order(self, coid: str | None) -> dict[str, Any]:
        with self._lock:
            return dict(self._orders.get(coid or "", {}))

    # -- caller thread -----------------------------------------------------------------

    async def arrival_price(self, client: Any, request: OrderRequest,
                            budget: float) -> float | None:
        """The quote now for ``request``'s symbol: a live ticker, else a short quote; None if none.

        Waits at most ``min(budget, 1 s)`` (loop thread); never raises.
        """
        if self.writer is None:
            return None
        try:
            live = client.live_price(request.symbol)
            if live:
                return float(live)
            wait = min(_ARRIVAL_QUOTE_S, budget)
            if wait <= 0.05:
                return None
            return float(await client.price_async(request.symbol, timeout=wait))
        except Exception:  # noqa: BLE001 - no quote means no arrival price, never a failed order
            return None

    def decided(self, request: OrderRequest, symbol: str, arrival: float | None) -> None:
        """Note the arrival price of an order about to be placed."""
        if self.writer is None:
            return
        with self._lock:
            entry = self._orders.setdefault(request.client_order_id, {})
            entry.update(symbol=symbol, side=request.side, order_type=request.order_type,
                         limit_price=request.limit_price)
            if arrival:
                entry["arrival_price"] = arrival

    def refused(self, request: OrderRequest, symbol: str, exc: BaseException) -> None:
        """An order ended in ``exc``: refused before sending, or failed after (a status row)."""
        known = self._order(request.client_order_id)
        result = getattr(exc, "result", None) or {}
        kind = "status" if known.get("sent") else "refused"
        self._put(kind, symbol=symbol, side=request.side, order_type=request.order_type,
                  limit_price=request.limit_price, client_order_id=request.client_order_id,
                  order_id=result.get("order_id"), status=result.get("status") or "Refused",
                  reason=refusal_reason(exc), detail=str(exc)[:500],
                  arrival_price=known.get("arrival_price"), source=result.get("source"))

    def failed_over(self, request: OrderRequest, symbol: str, result: dict[str, Any]) -> None:
        """The Client Portal placed the order; its fill (if any) is recorded from the result."""
        known = self._order(request.client_order_id)
        arrival = known.get("arrival_price")
        self._put("failover", symbol=symbol, side=request.side, order_type=request.order_type,
                  limit_price=request.limit_price, client_order_id=request.client_order_id,
                  order_id=_int(result.get("order_id")), status=result.get("status"),
                  arrival_price=arrival, quantity=result.get("filled_qty"), source="portal")
        qty, price = result.get("filled_qty") or 0.0, result.get("avg_price")
        if qty and price:
            self._put("fill", symbol=symbol, side=request.side,
                      client_order_id=request.client_order_id,
                      order_id=_int(result.get("order_id")), quantity=float(qty),
                      price=float(price), arrival_price=arrival,
                      exec_id=f"portal:{result.get('order_id')}:{request.client_order_id}",
                      fill_time=float(self._clock()),
                      slippage_bps=slippage_bps(request.side, arrival, float(price)),
                      source="portal")

    # -- loop thread ------------------------------------------------------------------

    def sent(self, request: OrderRequest, symbol: str, quantity: float, trade: Trade,
             account: str | None, mark: float | None = None) -> None:
        """An order went to TWS (called right after ``placeOrder``).

        ``mark``: IB's mark for the contract, the arrival price of an order
        that was not decided through :func:`journaled` (a closing order).
        """
        if self.writer is None:
            return
        with self._lock:
            entry = self._orders.setdefault(request.client_order_id, {})
            entry.update(symbol=symbol, side=request.side, sent=True,
                         order_type=request.order_type, limit_price=request.limit_price)
            if not entry.get("arrival_price"):
                entry["arrival_price"] = mark or None
            arrival = entry.get("arrival_price")
        self._put("sent", symbol=symbol, side=request.side, quantity=float(quantity),
                  order_type=request.order_type, limit_price=request.limit_price,
                  client_order_id=request.client_order_id, order_id=trade.order.orderId,
                  account=account, status=trade.orderStatus.status, arrival_price=arrival,
                  source="tws")

    def watch(self, ib: IB) -> None:
        """Follow status changes, fills and commissions of this process's orders on ``ib``."""
        if self.writer is None or self._watched is ib:
            return
        first = self._watched is None
        self._watched = ib
        self._connected = True
        if first and self.client is not None:
            self.writer.add_heartbeat(self._heartbeat)
        ib.connectedEvent += self._on_connected
        ib.disconnectedEvent += self._on_disconnected
        ib.orderStatusEvent += self._on_status
        ib.execDetailsEvent += self._on_fill
        ib.commissionReportEvent += self._on_commission

    def _on_connected(self) -> None:
        self._connected = True

    def _on_disconnected(self) -> None:
        self._connected = False

    def _heartbeat(self) -> dict[str, Any] | None:
        """This process's row for the ``processes`` table (writer thread); None once the
        Client is closed. Reads counters only: sends nothing to IB."""
        client = self.client
        try:
            _ = client.gateway  # raises once the Client is closed
        except Exception:  # noqa: BLE001 - closed: stop beating
            return None
        settings = client.settings
        lines = pacing_left = pacing_limit = None
        if "ib" in settings.sources:
            ib_source = client.source("ib")
            lines = ib_source.tickers.lines
            pacing_left = ib_source.pacing.requests_left()
            pacing_limit = ib_source.pacing.max_requests
        return {"host": socket.gethostname(), "pid": os.getpid(), "client_id": self.client_id,
                "agent": self.agent, "gateway": f"{settings.host}:{settings.port}",
                "connected": int(self._connected), "lines": lines,
                "lines_limit": settings.max_market_data_lines, "pacing_left": pacing_left,
                "pacing_limit": pacing_limit, "ts": float(self._clock())}

    def _on_status(self, trade: Trade) -> None:
        coid = trade.order.orderRef
        known = self._order(coid)
        if not known.get("sent"):
            return
        status = trade.orderStatus.status
        with self._lock:
            if self._status.get(coid) == status:
                return
            self._status[coid] = status
        self._put("status", symbol=known.get("symbol"), side=known.get("side"),
                  client_order_id=coid, order_id=trade.order.orderId, status=status,
                  quantity=float(trade.orderStatus.filled or 0.0), source="tws")

    def _on_fill(self, trade: Trade, fill: Any) -> None:
        coid = trade.order.orderRef
        known = self._order(coid)
        if not known.get("sent"):
            return
        execution = fill.execution
        side = "BUY" if execution.side.upper() in ("BOT", "BUY") else "SELL"
        price = float(execution.price)
        arrival = known.get("arrival_price")
        when = getattr(execution, "time", None)
        self._put("fill", symbol=known.get("symbol"), side=side, client_order_id=coid,
                  order_id=execution.orderId, account=execution.acctNumber or None,
                  quantity=float(execution.shares), price=price, exec_id=execution.execId,
                  fill_time=when.timestamp() if isinstance(when, datetime) else None,
                  arrival_price=arrival, slippage_bps=slippage_bps(side, arrival, price),
                  order_type=known.get("order_type"), source="tws")

    def _on_commission(self, trade: Trade, fill: Any, report: Any) -> None:
        coid = trade.order.orderRef
        known = self._order(coid)
        if not known.get("sent"):
            return
        realized = _finite(getattr(report, "realizedPNL", None))
        self._put("commission", symbol=known.get("symbol"), side=known.get("side"),
                  client_order_id=coid, order_id=trade.order.orderId, exec_id=report.execId,
                  commission=_finite(report.commission), currency=report.currency or None,
                  realized_pnl=realized, source="tws")


def journaled(place: F) -> F:
    """Wrap the router's ``place(order, deadline, tws_down=None)`` coroutine with journal rows.

    Before: the arrival price (never more than a second's wait). After: a
    ``failover`` row for a Client Portal result; a ``refused`` (or ``status``,
    once sent) row for an error, which is re-raised unchanged.
    """

    @functools.wraps(place)
    async def wrapper(self: Any, order: Any, deadline: float, tws_down: Any = None) -> Any:
        journal: JournalRecorder = self.ctx.journal
        if not journal.enabled:
            return await place(self, order, deadline, tws_down)
        request, symbol = order.request, order.instrument.symbol
        # The portal needs all the time there is when TWS is already known down.
        budget = 0.0 if tws_down is not None else deadline - time.monotonic()
        journal.decided(request, symbol,
                        await journal.arrival_price(self.ctx.client, request, budget / 4))
        try:
            result = await place(self, order, deadline, tws_down)
        except Exception as exc:
            journal.refused(request, symbol, exc)
            raise
        if isinstance(result, dict) and result.get("source") == "portal" \
                and not result.get("existing"):  # a repeat of a known id sent nothing
            journal.failed_over(request, symbol, result)
        return result

    return wrapper  # type: ignore[return-value]


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) < 1e300 else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
