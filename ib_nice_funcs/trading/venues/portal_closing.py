"""Getting out through the Client Portal while TWS / IB Gateway is unreachable.

The portal side of :meth:`cancel_all`, :meth:`kill_switch`,
:meth:`close_position` and :meth:`emergency_stop` (``order_failover`` on and
TWS refused before anything was sent over it):

* cancels: every working order the portal lists for the account (any
  client's), cancelled one by one, then the portal is asked again until none
  is left or the deadline passes;
* closing orders: market orders with new client order ids that only reduce a
  position, so the risk check (which always allows them) is skipped, as on
  TWS; they pass the same live-account guard as every portal order. Fills
  the portal's lagging positions cache does not show yet are counted (see
  :meth:`PortalVenue.rows`), so a second call never closes twice.

Threading: caller's thread (never the loop thread); a read-positions-then-
close sequence holds one lock per Trader, so two calls cannot both close the
same position.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from ...errors import IBNiceFuncsError, RequestTimeoutError
from ...model import CancelAllResult, CancelledOrders, FlattenReport, OpenOrderRow, OrderResult
from ...symbols import parse_symbol
from ..results import flatten_report, order_result
from ..validation import new_client_order_id
from .portal import holds_row, portal_result, time_left

if TYPE_CHECKING:  # pragma: no cover
    from ...sources.portal import PortalSource
    from ...symbols import Instrument
    from .portal import PortalVenue

__all__ = ["PortalClosing"]

log = logging.getLogger("ib_nice_funcs")

#: Longest pause between two asks whether cancelled orders are gone.
_RECHECK_S = 0.25
#: A position smaller than this is flat (float noise after partial closes).
_FLAT = 1e-9


class PortalClosing:
    """Cancel-and-flatten helpers over the Client Portal for one Trader."""

    def __init__(self, venue: PortalVenue) -> None:
        self.venue = venue
        self._flatten = threading.Lock()

    # -- building blocks -----------------------------------------------------------------

    def _start(self, cause: BaseException, deadline: float, what: str) -> PortalSource:
        """The portal, after the live-account guard (re-raises ``cause`` when off)."""
        venue = self.venue
        portal = venue.source(cause)
        venue.note_down(cause)
        venue.guard(portal, deadline, what)
        return portal

    def _cancel(self, portal: PortalSource, instrument: Instrument | None,
                deadline: float) -> tuple[int, list[OpenOrderRow]]:
        """Cancel working orders (all, or the instrument's); (cancelled, still open)."""

        def working() -> list[OpenOrderRow]:
            rows = self.venue.open_order_rows(portal, deadline)
            return [r for r in rows if instrument is None or holds_row(instrument, r)]

        before = working()
        for row in before:
            target = row.get("order_id") if row.get("order_id") is not None else \
                row.get("client_order_id")
            if target is None:
                continue
            try:
                result = portal.cancel_order(target, timeout=time_left(deadline))
            except RequestTimeoutError as exc:
                log.warning("cancel through the Client Portal of order %s: %s", target, exc)
                continue
            if not result.get("success"):
                log.info("cancel through the Client Portal of order %s: %s", target,
                         result.get("error") or result.get("status"))
        remaining = working() if before else []
        while remaining and time.monotonic() + _RECHECK_S < deadline:
            time.sleep(_RECHECK_S)  # bounded re-ask: the portal sends no cancel events
            remaining = working()
        gone = {str(r.get("order_id")) for r in before} - {str(r.get("order_id"))
                                                            for r in remaining}
        return len(gone), remaining

    def _held(self, portal: PortalSource, deadline: float) -> list[dict[str, Any]]:
        """Non-flat positions (with this Trader's fills the portal does not show yet)."""
        rows = self.venue.rows(portal.positions(timeout=time_left(deadline)), deadline,
                                   priced=False)
        return [r for r in rows if abs(r["quantity"]) > _FLAT]

    def _close(self, portal: PortalSource, row: dict[str, Any], deadline: float,
               tag: str) -> OrderResult:
        """One market order taking the whole position ``row`` off; waits for the fill."""
        venue = self.venue
        symbol = row["symbol"]
        qty = float(row["quantity"])
        side = "SELL" if qty > 0 else "BUY"
        coid = new_client_order_id(tag)
        try:
            instrument = parse_symbol(symbol)
        except (ValueError, TypeError) as exc:
            return order_result(success=False, status="NotSent", symbol=symbol, side=side,
                                error=f"cannot close {symbol} through the Client Portal: {exc}",
                                source="portal")
        # IB's crypto venue takes market orders as IOC, not DAY.
        tif = "IOC" if instrument.asset_class == "crypto" else "DAY"
        venue.mark_sent(coid)
        try:
            placed = portal.place_order(instrument, side, abs(qty), "MKT", tif=tif,
                                        client_order_id=coid, timeout=time_left(deadline))
        except RequestTimeoutError as exc:
            return order_result(  # the mark stays: the id is asked before any reuse
                success=False, status="Unknown", symbol=symbol, side=side, client_order_id=coid,
                error=f"{exc}; the closing order may exist: check get_open_orders()",
                source="portal")
        except (IBNiceFuncsError, ValueError, TypeError, OSError) as exc:
            return order_result(success=False, status="NotSent", symbol=symbol, side=side,
                                client_order_id=coid, error=str(exc), source="portal")
        result: OrderResult = {**portal_result(placed), "source": "portal",
                               "client_order_id": coid}
        filled = float(result.get("filled_qty") or 0.0)
        if filled:
            venue.note_fill(symbol, qty, -filled if qty > 0 else filled)
        log.info("closing %s through the Client Portal: %s %g (client order id %s, status %s)",
                 symbol, side, abs(qty), coid, result.get("status"))
        return venue.remember(coid, result)

    def _locked(self, deadline: float, what: str) -> None:
        if not self._flatten.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise RequestTimeoutError(
                f"{what}: another close through the Client Portal was still running at the "
                "timeout; nothing was sent by this one")

    # -- the helpers -----------------------------------------------------------------------

    def cancel_all(self, cause: BaseException, deadline: float) -> CancelAllResult:
        """Like ``cancel_all``: every working order of the account, through the portal."""
        portal = self._start(cause, deadline, "cancel_all")
        cancelled, remaining = self._cancel(portal, None, deadline)
        return {
            "success": not remaining, "cancelled": cancelled, "remaining": remaining,
            "error": None if not remaining else (
                f"{len(remaining)} order(s) still open after cancelling through the Client "
                "Portal; check the account"),
            "source": "portal",
        }

    def close(self, instrument: Instrument, cause: BaseException, deadline: float, *,
              cancel: bool, what: str) -> OrderResult:
        """``close_position`` (``cancel`` False) or ``kill_switch`` (True) through the portal."""
        portal = self._start(cause, deadline, what)
        extra: CancelledOrders = {}
        if cancel:
            cancelled, left = self._cancel(portal, instrument, deadline)
            extra = {"cancelled_orders": cancelled, "uncancelled": left}
        self._locked(deadline, what)
        try:
            mine = [r for r in self._held(portal, deadline) if holds_row(instrument, r)]
            if not mine:
                return order_result(success=True, status="NoPosition", symbol=instrument.symbol,
                                    quantity=0.0, source="portal", **extra)
            result = self._close(portal, mine[0], deadline, "kill" if cancel else "close")
        finally:
            self._flatten.release()
        return {**result, **extra}

    def emergency_stop(self, cause: BaseException, deadline: float) -> FlattenReport:
        """Like ``emergency_stop``: cancel everything, flatten everything, check both."""
        portal = self._start(cause, deadline, "emergency_stop")
        self._locked(deadline, "emergency_stop")
        try:
            cancelled, _ = self._cancel(portal, None, deadline)
            closed = [self._close(portal, row, deadline, "estop")
                      for row in self._held(portal, deadline)]
            still_open = self.venue.open_order_rows(portal, deadline)
            remaining_positions = {r["symbol"]: float(r["quantity"])
                                   for r in self._held(portal, deadline)}
        finally:
            self._flatten.release()
        return flatten_report(cancelled, closed, still_open, remaining_positions, source="portal")
