"""Getting out over TWS / IB Gateway: cancel all, close, chunked close, flatten.

Closing orders only ever reduce a position, which the risk limits always
allow (a limit must never trap an agent in a position), so they skip the
risk snapshot: a kill switch keeps working when IB's account values are
missing. The live-account guard was passed by the router before any of
this runs (the ``account`` argument).

Threading contract: loop thread only. A read-position-then-close sequence
holds one lock, so two at once (a kill switch during a chunked close) cannot
both close the same shares and reverse the position.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from ...model import CancelAllResult, CancelledOrders, FlattenReport, OrderResult
from ...symbols import Instrument
from ..contracts import holds, position_symbol
from ..results import (
    DONE_STATES,
    as_unknown,
    flatten_report,
    order_result,
    order_summary,
    trade_result,
)
from ..validation import new_client_order_id, validate_order
from .tws_account import ROUND_TRIP_S, TwsAccount

if TYPE_CHECKING:  # pragma: no cover
    from ib_async import IB, Position, Trade

    from ..._gateway import IBGateway
    from ...model import OrderRequest
    from ..context import TradingContext
    from ..contracts import ContractSpec

__all__ = ["TwsClosing", "OrderSending", "no_position_result"]

log = logging.getLogger("ib_nice_funcs")

#: Longest pause between two checks that other clients' orders are gone after
#: a global cancel (IB sends this client no event for them).
_RECHECK_S = 0.25


def no_position_result(symbol: str, **extra: Any) -> OrderResult:
    """Nothing to close: a success that sent nothing."""
    return order_result(success=True, status="NoPosition", symbol=symbol, quantity=0.0, **extra)


class OrderSending(Protocol):
    """What closing needs of the TWS venue (:class:`~.tws.TwsVenue`): send and wait."""

    ctx: TradingContext
    gateway: IBGateway
    account: TwsAccount

    async def wait(self, trade: Trade, for_fill: bool, deadline: float) -> bool:
        """Wait on the trade's events until it settles; False at the deadline."""
        ...

    def send(self, ib: IB, spec: ContractSpec, request: OrderRequest, quantity: float,
             account: str) -> Trade:
        """Put the order on the wire and record it."""
        ...

    def mark_usd(self, ib: IB, spec: ContractSpec, account: str) -> float:
        """IB's mark for a held contract in USD (0.0 when there is none)."""
        ...


class TwsClosing:
    """The TWS venue's cancel and flatten operations (loop thread)."""

    def __init__(self, venue: OrderSending) -> None:
        self.venue = venue
        self.gateway = venue.gateway
        #: Serialises read-position-then-close sequences (created on the loop).
        self._flatten_lock: asyncio.Lock | None = None

    def _flattening(self) -> asyncio.Lock:
        if self._flatten_lock is None:
            self._flatten_lock = asyncio.Lock()
        return self._flatten_lock

    # -- building blocks -----------------------------------------------------------------

    async def _cancel_trades(self, ib: IB, trades: list[Trade], deadline: float) -> list[Trade]:
        """Cancel this client's trades among ``trades``; return the ones still open."""
        my_id = ib.client.clientId
        mine = [t for t in trades if t.order.clientId == my_id and t.order.orderId > 0]
        for trade in mine:
            ib.cancelOrder(trade.order)
        for trade in mine:
            await self.venue.wait(trade, True, deadline)
        mine_ids = {id(t) for t in mine}
        return [t for t in trades
                if id(t) not in mine_ids or t.orderStatus.status not in DONE_STATES]

    async def _cancel_everything(self, ib: IB, deadline: float) -> CancelAllResult:
        """reqGlobalCancel, then confirm with the gateway that no order is open."""
        venue = self.venue
        before = await venue.account.open_trades(ib)
        ib.reqGlobalCancel()
        # This client's orders report their cancellation as events.
        for trade in [t for t in before if t.order.clientId == ib.client.clientId]:
            await venue.wait(trade, True, deadline)
        remaining = await venue.account.open_trades(ib)
        while remaining and time.monotonic() < deadline:
            # Other clients' orders send this client nothing; re-ask after the next
            # order event or a short pause, whichever comes first (bounded).
            await _next_order_event(ib, min(_RECHECK_S, deadline - time.monotonic()))
            remaining = await venue.account.open_trades(ib)
        ids = {id(t) for t in remaining}
        return {
            "success": not remaining,
            "cancelled": sum(1 for t in before if id(t) not in ids),
            "remaining": [order_summary(t, position_symbol(t.contract)) for t in remaining],
            "error": None if not remaining else (
                f"{len(remaining)} order(s) still open after the global cancel; check TWS"
            ),
        }

    async def _close(self, ib: IB, account: str, pos: Position, quantity: float,
                     deadline: float, tag: str) -> OrderResult:
        """Send a market order taking ``quantity`` off ``pos`` and wait for its fill."""
        venue = self.venue
        symbol = position_symbol(pos.contract)
        spec = await venue.ctx.contracts.for_contract(ib, pos.contract, symbol)
        side = "SELL" if pos.position > 0 else "BUY"
        # IB's crypto venue takes market orders as IOC, not DAY.
        tif = "IOC" if spec.contract.secType == "CRYPTO" else "DAY"
        request = validate_order(
            spec.contract, side, quantity, "MKT", tif=tif, client_order_id=new_client_order_id(tag)
        )
        trade = venue.send(ib, spec, request, quantity, account)
        settled = await venue.wait(trade, True, deadline)
        result = trade_result(trade, symbol)
        if not settled and result["status"] == "PendingSubmit":
            as_unknown(result, "IB did not acknowledge the closing order in time; "
                       "get_position() shows whether it filled")
        venue.ctx.ledger.remember(request.client_order_id, symbol, trade, ib, result)
        if not result["success"]:
            log.debug("closing %s: %s", symbol, result["error"] or result["status"])
        return result

    async def _symbol_orders(self, ib: IB, instrument: Instrument) -> list[Trade]:
        trades = await self.venue.account.open_trades(ib)
        return [t for t in trades if holds(instrument, t.contract)]

    async def _symbol_position(self, ib: IB, instrument: Instrument) -> Position | None:
        for pos in await self.venue.account.ib_positions(ib):
            if holds(instrument, pos.contract):
                return pos
        return None

    # -- the operations ------------------------------------------------------------------

    async def cancel_all(self, deadline: float) -> CancelAllResult:
        """Every open order of the account, any client's: IB's global cancel, confirmed."""
        return await self.gateway.request(
            lambda ib: self._cancel_everything(ib, deadline), "cancel_all")

    async def close(self, instrument: Instrument, account: str, deadline: float, *,
                    cancel: bool, what: str) -> OrderResult:
        """``close_position`` (``cancel`` False) or ``kill_switch`` (True) of one symbol."""

        async def run(ib: IB) -> OrderResult:
            extra: CancelledOrders = {}
            if cancel:
                orders = await self._symbol_orders(ib, instrument)
                left = await self._cancel_trades(ib, orders, deadline)
                extra = {"cancelled_orders": len(orders) - len(left),
                         "uncancelled": [order_summary(t, instrument.symbol) for t in left]}
            async with self._flattening():
                pos = await self._symbol_position(ib, instrument)
                if pos is None:
                    return no_position_result(instrument.symbol, **extra)
                result = await self._close(ib, account, pos, abs(pos.position), deadline,
                                           "kill" if cancel else "close")
            result.update(extra)
            return result

        return await self.gateway.request(run, what)

    async def chunk_start(self, instrument: Instrument, account: str, deadline: float
                          ) -> tuple[int, Position | None, float | None, float]:
        """Cancel the symbol's orders; ``(cancelled, position, IB's mark, size increment)``."""

        async def start(ib: IB) -> tuple[int, Position | None, float | None, float]:
            orders = await self._symbol_orders(ib, instrument)
            left = await self._cancel_trades(ib, orders, deadline)
            pos = await self._symbol_position(ib, instrument)
            mark, increment = None, 1.0
            if pos is not None:
                spec = await self.venue.ctx.contracts.for_contract(
                    ib, pos.contract, instrument.symbol)
                mark = self.venue.mark_usd(ib, spec, account) or None
                increment = spec.size_increment
            return len(orders) - len(left), pos, mark, increment

        return await self.gateway.request(start, f"chunk_kill({instrument.symbol})")

    async def chunk(self, instrument: Instrument, account: str, step: float, side: float,
                    deadline: float) -> OrderResult | None:
        """One child of a chunked close: at most ``step`` units; None when already flat."""

        async def child(ib: IB) -> OrderResult | None:
            # Sized from the position as it is now, under the flatten lock: a
            # kill_switch or another chunk_kill running at the same time must
            # not make this one close (and so reverse) the same shares again.
            async with self._flattening():
                now = await self._symbol_position(ib, instrument)
                if now is None or float(now.position) * side <= 0:
                    return None
                qty = min(step, abs(float(now.position)))
                return await self._close(ib, account, now, qty, deadline, "chunk")

        return await self.gateway.request(child, f"chunk_kill({instrument.symbol})")

    async def flatten(self, account: str, deadline: float) -> FlattenReport:
        """Cancel every order, close every position together, then check both."""

        async def flatten(ib: IB) -> FlattenReport:
            venue = self.venue
            cancel = await self._cancel_everything(ib, deadline)
            positions = await venue.account.ib_positions(ib)
            closes = await asyncio.gather(
                *(self._close(ib, account, p, abs(p.position), deadline, "estop")
                  for p in positions),
                return_exceptions=True,
            )
            closed: list[OrderResult] = [
                c if not isinstance(c, BaseException) else order_result(
                    success=False, status="NotSent", error=str(c),
                    symbol=position_symbol(p.contract))
                for c, p in zip(closes, positions, strict=True)
            ]
            left = max(0.5, min(ROUND_TRIP_S, deadline - time.monotonic()))
            after = await venue.account.ib_positions(ib, left)
            still_open = await venue.account.open_trades(ib)
            remaining_positions = {position_symbol(p.contract): float(p.position) for p in after}
            return flatten_report(
                cancel["cancelled"], closed,
                [order_summary(t, position_symbol(t.contract)) for t in still_open],
                remaining_positions,
            )

        async def run(ib: IB) -> FlattenReport:
            async with self._flattening():
                return await flatten(ib)

        return await self.gateway.request(run, "emergency_stop")


async def _next_order_event(ib: IB, timeout: float) -> None:
    """Return at the next order status or open-order event, or after ``timeout``."""
    loop = asyncio.get_running_loop()
    seen: asyncio.Future[None] = loop.create_future()

    def hit(*_: Any) -> None:
        if not seen.done():
            seen.set_result(None)

    ib.orderStatusEvent += hit
    ib.openOrderEvent += hit
    try:
        await asyncio.wait_for(seen, max(0.0, timeout))
    except (asyncio.TimeoutError, TimeoutError):
        pass
    finally:
        ib.orderStatusEvent -= hit
        ib.openOrderEvent -= hit
