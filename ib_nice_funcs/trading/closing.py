"""Getting out: cancel_all, kill_switch, chunk_kill, close_position, emergency_stop.

Closing orders only ever reduce a position, which the risk limits always
allow (a limit must never trap an agent in a position), so they skip the
risk snapshot: a kill switch keeps working when IB's account values are
missing. They still pass the live-account guard.

With ``order_failover`` on and TWS / IB Gateway refused before anything was
sent over it, cancel_all, kill_switch, close_position and emergency_stop run
through the Client Portal instead (:mod:`.failover_closing`; results carry
``source`` "portal"). chunk_kill stays TWS-only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from ..errors import ConnectionFailedError
from ..symbols import Instrument, parse_symbol
from ._core import _ROUND_TRIP_S, TraderCore
from .contracts import position_symbol
from .positions import _matches
from .results import (
    DONE_STATES,
    as_unknown,
    flatten_report,
    order_result,
    order_summary,
    round_quantity,
    trade_result,
)
from .validation import new_client_order_id, validate_order, validate_usd_amount

if TYPE_CHECKING:  # pragma: no cover
    from ib_async import IB, Position, Trade

__all__ = ["ClosingMixin"]

log = logging.getLogger("ib_nice_funcs")

#: Longest pause between two checks that other clients' orders are gone after
#: a global cancel (IB sends this client no event for them).
_RECHECK_S = 0.25


def _no_position_result(symbol: str, **extra: Any) -> dict[str, Any]:
    return order_result(success=True, status="NoPosition", symbol=symbol, quantity=0.0, **extra)


class ClosingMixin(TraderCore):
    """Cancel and flatten helpers of the Trader."""

    # -- loop side -------------------------------------------------------------------

    async def _cancel_trades_async(
        self, ib: IB, trades: list[Trade], deadline: float
    ) -> list[Trade]:
        """Cancel this client's trades among ``trades``; return the ones still open."""
        my_id = ib.client.clientId
        mine = [t for t in trades if t.order.clientId == my_id and t.order.orderId > 0]
        for trade in mine:
            ib.cancelOrder(trade.order)
        for trade in mine:
            await self._wait_async(trade, True, deadline)
        mine_ids = {id(t) for t in mine}
        return [t for t in trades
                if id(t) not in mine_ids or t.orderStatus.status not in DONE_STATES]

    async def _cancel_everything_async(self, ib: IB, deadline: float) -> dict[str, Any]:
        """reqGlobalCancel, then confirm with the gateway that no order is open."""
        before = await self._open_trades_async(ib)
        ib.reqGlobalCancel()
        # This client's orders report their cancellation as events.
        for trade in [t for t in before if t.order.clientId == ib.client.clientId]:
            await self._wait_async(trade, True, deadline)
        remaining = await self._open_trades_async(ib)
        while remaining and time.monotonic() < deadline:
            # Other clients' orders send this client nothing; re-ask after the next
            # order event or a short pause, whichever comes first (bounded).
            await self._next_order_event(ib, min(_RECHECK_S, deadline - time.monotonic()))
            remaining = await self._open_trades_async(ib)
        ids = {id(t) for t in remaining}
        return {
            "success": not remaining,
            "cancelled": sum(1 for t in before if id(t) not in ids),
            "remaining": [order_summary(t, position_symbol(t.contract)) for t in remaining],
            "error": None if not remaining else (
                f"{len(remaining)} order(s) still open after the global cancel; check TWS"
            ),
        }

    def _flattening(self) -> asyncio.Lock:
        """The lock a read-position-then-close sequence holds (loop side)."""
        if self._flatten_lock is None:
            self._flatten_lock = asyncio.Lock()
        return self._flatten_lock

    @staticmethod
    async def _next_order_event(ib: IB, timeout: float) -> None:
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

    async def _close_async(
        self, ib: IB, account: str, pos: Position, quantity: float, deadline: float, tag: str
    ) -> dict[str, Any]:
        """Send a market order taking ``quantity`` off ``pos`` and wait for its fill."""
        symbol = position_symbol(pos.contract)
        spec = await self._contracts.for_contract(ib, pos.contract, symbol)
        side = "SELL" if pos.position > 0 else "BUY"
        # IB's crypto venue takes market orders as IOC, not DAY.
        tif = "IOC" if spec.contract.secType == "CRYPTO" else "DAY"
        request = validate_order(
            spec.contract, side, quantity, "MKT", tif=tif, client_order_id=new_client_order_id(tag)
        )
        trade = self._send(ib, spec, request, quantity, account)
        settled = await self._wait_async(trade, True, deadline)
        result = trade_result(trade, symbol)
        if not settled and result["status"] == "PendingSubmit":
            as_unknown(result, "IB did not acknowledge the closing order in time; "
                       "get_position() shows whether it filled")
        self._remember(request.client_order_id, symbol, trade, ib, result)
        if not result["success"]:
            log.debug("closing %s: %s", symbol, result["error"] or result["status"])
        return result

    async def _symbol_orders_async(self, ib: IB, instrument: Instrument) -> list[Trade]:
        return [t for t in await self._open_trades_async(ib) if _matches(instrument, t.contract)]

    async def _symbol_position_async(self, ib: IB, instrument: Instrument) -> Position | None:
        for pos in await self._positions_async(ib):
            if _matches(instrument, pos.contract):
                return pos
        return None

    # -- thread side -----------------------------------------------------------------

    def cancel_all(self, *, timeout: float | None = None) -> dict[str, Any]:
        """Cancel every open order on the account, whichever client placed it.

        Sends IB's global cancel, then asks the gateway until no order is open.
        Blocks up to ``timeout`` seconds (default: the ``timeout`` setting).

        Returns:
            ``{"success", "cancelled", "remaining", "error"}``; ``remaining``
            lists orders still open at the deadline.

        Raises:
            LiveTradingDisabledError: a live account without allow_live (nothing sent).
            ConnectionFailedError, RequestTimeoutError: the gateway failed.
        """
        deadline = self._deadline(timeout)
        route = self._require_route(deadline)
        if isinstance(route, ConnectionFailedError):
            return self._portal_closing.cancel_all(route, deadline)
        try:
            return self._run(
                lambda: self.gateway.request(
                    lambda ib: self._cancel_everything_async(ib, deadline), "cancel_all"),
                deadline, "cancel_all",
            )
        except ConnectionFailedError as exc:
            # A cancel is safe to repeat: one the gateway got first is simply gone.
            return self._portal_closing.cancel_all(exc, deadline)

    def close_position(self, symbol: Any, *, timeout: float | None = None) -> dict[str, Any]:
        """Flatten the position in ``symbol`` with one market order; wait for the fill.

        Open orders on the symbol are left alone (see :meth:`kill_switch`).
        Nothing is sent when there is no position (``status`` ``NoPosition``,
        ``success`` True). Blocks up to ``timeout`` seconds.

        Returns:
            The order result dict.

        Raises:
            ValueError, TypeError: a malformed symbol.
            LiveTradingDisabledError: a live account without allow_live.
            OrderRejectedError: IB rejected the closing order (``exc.result``).
            ConnectionFailedError, RequestTimeoutError: the gateway failed.
        """
        instrument = parse_symbol(symbol)
        deadline = self._deadline(timeout)
        what = f"close_position({instrument.symbol})"
        account = self._require_route(deadline)
        if isinstance(account, ConnectionFailedError):
            return self._raise_for(self._portal_closing.close(
                instrument, account, deadline, cancel=False, what=what), what)

        async def run(ib: IB) -> dict[str, Any]:
            async with self._flattening():
                pos = await self._symbol_position_async(ib, instrument)
                if pos is None:
                    return _no_position_result(instrument.symbol)
                return await self._close_async(ib, account, pos, abs(pos.position), deadline, "close")

        result = self._run(lambda: self.gateway.request(run, what), deadline, what)
        return self._raise_for(result, what)

    def kill_switch(self, symbol: Any, *, timeout: float | None = None) -> dict[str, Any]:
        """Cancel this symbol's open orders, then flatten its position at market.

        Orders other API clients placed on the symbol cannot be cancelled one
        by one; they are listed in ``uncancelled`` (use :meth:`cancel_all`).
        Blocks up to ``timeout`` seconds.

        Returns:
            The closing order's result dict plus ``cancelled_orders`` and
            ``uncancelled``; ``status`` ``NoPosition`` when flat.

        Raises:
            Like :meth:`close_position`.
        """
        instrument = parse_symbol(symbol)
        deadline = self._deadline(timeout)
        what = f"kill_switch({instrument.symbol})"
        account = self._require_route(deadline)
        if isinstance(account, ConnectionFailedError):
            return self._raise_for(self._portal_closing.close(
                instrument, account, deadline, cancel=True, what=what), what)

        async def run(ib: IB) -> dict[str, Any]:
            orders = await self._symbol_orders_async(ib, instrument)
            left = await self._cancel_trades_async(ib, orders, deadline)
            extra = {
                "cancelled_orders": len(orders) - len(left),
                "uncancelled": [order_summary(t, instrument.symbol) for t in left],
            }
            async with self._flattening():
                pos = await self._symbol_position_async(ib, instrument)
                if pos is None:
                    return _no_position_result(instrument.symbol, **extra)
                result = await self._close_async(ib, account, pos, abs(pos.position), deadline, "kill")
            result.update(extra)
            return result

        result = self._run(lambda: self.gateway.request(run, what), deadline, what)
        return self._raise_for(result, what)

    def chunk_kill(
        self,
        symbol: Any,
        max_order_size: float | None = None,
        slippage: Any = None,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Cancel the symbol's orders, then sell (or cover) the position in chunks.

        Each child order is a market order worth at most ``max_order_size``
        USD (at least one size increment), sent after the previous one filled,
        so a large position does not hit the book at once.

        Args:
            symbol: What to flatten.
            max_order_size: USD per child order (nice_funcs' ``max_usd_order_size``);
                None sends the whole position in one order.
            slippage: Accepted for nice_funcs compatibility and ignored: the
                children are market orders.
            timeout: Seconds each child order may take (default: the
                ``timeout`` setting). Children are sent until the position is
                gone; the whole call stops after the ``chunked_order_budget_s``
                setting (default 300 s) and reports what is left.

        Returns:
            ``{"success", "symbol", "chunks": [results], "filled_qty",
            "remaining_qty", "cancelled_orders", "error"}``.

        Raises:
            ValueError, TypeError: a malformed symbol or a non-positive size.
            LiveTradingDisabledError: a live account without allow_live.
            ConnectionFailedError, RequestTimeoutError: the gateway failed.
        """
        instrument = parse_symbol(symbol)
        limit_usd = None
        if max_order_size is not None:
            limit_usd = validate_usd_amount(max_order_size, "max_order_size")
        per_child = self.client.resolve_timeout(timeout)
        deadline = self._deadline(per_child)
        # The child count is unbounded (a $3 cap on a large position means many
        # children); the time is not.
        overall = time.monotonic() + max(per_child, self.settings.chunked_order_budget_s)
        account = self._require_trading(deadline)
        what = f"chunk_kill({instrument.symbol})"

        async def start(ib: IB) -> tuple[int, Position | None, float | None]:
            orders = await self._symbol_orders_async(ib, instrument)
            left = await self._cancel_trades_async(ib, orders, deadline)
            pos = await self._symbol_position_async(ib, instrument)
            mark = None
            if pos is not None:
                spec = await self._contracts.for_contract(ib, pos.contract, instrument.symbol)
                mark = self._mark_usd(ib, spec, account) or None
            return len(orders) - len(left), pos, mark

        cancelled, pos, mark = self._run(lambda: self.gateway.request(start, what), deadline, what)
        outcome: dict[str, Any] = {
            "success": True, "symbol": instrument.symbol, "chunks": [], "filled_qty": 0.0,
            "remaining_qty": 0.0, "cancelled_orders": cancelled, "error": None,
        }
        if pos is None:
            return outcome
        remaining = abs(float(pos.position))
        step = remaining
        if limit_usd is not None:
            price = mark
            if price is None:
                price = self.client.price(
                    instrument.symbol, timeout=max(0.5, deadline - time.monotonic()))
            unit_usd = self._usd_per_unit(instrument, price, deadline)
            spec = self._contracts.cached(pos.contract.conId)
            increment = spec.size_increment if spec else 1.0
            step = max(round_quantity(limit_usd / unit_usd, increment), increment)
        side = 1.0 if float(pos.position) > 0 else -1.0

        async def child(ib: IB, d: float) -> dict[str, Any] | None:
            # Sized from the position as it is now, under the flatten lock: a
            # kill_switch or another chunk_kill running at the same time must
            # not make this one close (and so reverse) the same shares again.
            async with self._flattening():
                now = await self._symbol_position_async(ib, instrument)
                if now is None or float(now.position) * side <= 0:
                    return None
                qty = min(step, abs(float(now.position)))
                return await self._close_async(ib, account, now, qty, d, "chunk")

        while remaining > 0 and time.monotonic() < overall:
            child_deadline = min(self._deadline(per_child), overall)
            result = self._run(
                lambda d=child_deadline: self.gateway.request(lambda ib: child(ib, d), what),
                child_deadline, what,
            )
            if result is None:  # flat already (closed elsewhere meanwhile)
                remaining = 0.0
                break
            outcome["chunks"].append(result)
            filled = float(result.get("filled_qty") or 0.0)
            outcome["filled_qty"] += filled
            remaining = max(0.0, round(remaining - filled, 10))
            if not result["success"] or result["status"] != "Filled":
                outcome["error"] = result["error"] or f"a child order ended {result['status']}"
                break
        outcome["remaining_qty"] = remaining
        outcome["success"] = remaining <= 0
        if remaining > 0 and outcome["error"] is None:
            outcome["error"] = (
                f"{remaining:g} left after {len(outcome['chunks'])} child orders in "
                f"{self.settings.chunked_order_budget_s:g} s (raise IB_NICE_FUNCS_CHUNKED_BUDGET_S "
                "or the max order size)"
            )
        return outcome

    def _latch_halt(self, route: str | ConnectionFailedError, deadline: float) -> None:
        """Latch the fleet's halt for the account (before anything is cancelled)."""
        account = route if isinstance(route, str) else (
            self.settings.account or self.gateway.account)
        if account:
            self._run(lambda: self.fleet.halt(account), deadline, "halt the fleet")
        else:
            log.warning("emergency_stop: the account is not known yet, so no halt was latched "
                        "for the other agent processes; set IB_ACCOUNT")

    def resume_trading(self, *, timeout: float | None = None) -> dict[str, Any]:
        """Lift the halt ``emergency_stop()`` latched, for every agent process of the account.

        Blocks up to ``timeout`` seconds (connects first when the account is
        not configured, to learn it).

        Returns:
            ``{"success": True, "account", "was_halted", "halted_by", "error": None}``.

        Raises:
            FleetUnavailableError: the shared state (Redis) is unreachable; the halt stays.
            ConnectionFailedError: the account is not configured and the gateway is down.
        """
        deadline = self._deadline(timeout)
        account = self.settings.account or self.gateway.account or self._run(
            self._trading_account_async, deadline, "resume_trading")
        lifted = self._run(lambda: self.fleet.resume(account), deadline, "resume_trading")
        if lifted is not None:
            log.warning("trading on account %s resumed (the halt by process %s is lifted)",
                        account, lifted.by)
        return {"success": True, "account": account, "was_halted": lifted is not None,
                "halted_by": lifted.by if lifted is not None else None, "error": None}

    def emergency_stop(self, *, timeout: float | None = None) -> dict[str, Any]:
        """Cancel every open order on the account, then flatten every position.

        First it latches a halt for the account: every agent process sharing
        the fleet state (this host's files, or Redis) refuses opening orders
        until :meth:`resume_trading`; closing orders still go.

        The cancel is IB's global cancel (every client's orders); the closing
        orders are market orders sent together and waited on together. Safe
        to call twice: with nothing open and nothing held it sends nothing
        and succeeds. Blocks up to ``timeout`` seconds (default: three times
        the ``timeout`` setting).

        Returns:
            ``{"success", "cancelled_orders", "closed": [results],
            "remaining_orders": [...], "remaining_positions": {symbol: qty},
            "error"}``; success means no open order and no position remain.

        Raises:
            LiveTradingDisabledError: a live account without allow_live (nothing sent).
            ConnectionFailedError, RequestTimeoutError: the gateway failed.
        """
        budget = self.client.resolve_timeout(timeout) if timeout is not None else 3 * self.settings.timeout
        deadline = time.monotonic() + budget
        account = self._require_route(deadline)
        self._latch_halt(account, deadline)
        if isinstance(account, ConnectionFailedError):
            result = self._portal_closing.emergency_stop(account, deadline)
            log.info("emergency_stop through the Client Portal: %d order(s) cancelled, %d "
                     "position(s) closed%s", result["cancelled_orders"], len(result["closed"]),
                     "" if result["success"] else f"; incomplete: {result['error']}")
            return result

        async def run(ib: IB) -> dict[str, Any]:
            async with self._flattening():
                return await flatten(ib)

        async def flatten(ib: IB) -> dict[str, Any]:
            cancel = await self._cancel_everything_async(ib, deadline)
            positions = await self._positions_async(ib)
            closes = await asyncio.gather(
                *(self._close_async(ib, account, p, abs(p.position), deadline, "estop")
                  for p in positions),
                return_exceptions=True,
            )
            closed = [
                c if isinstance(c, dict) else order_result(
                    success=False, status="NotSent", error=str(c),
                    symbol=position_symbol(p.contract))
                for c, p in zip(closes, positions)
            ]
            left = max(0.5, min(_ROUND_TRIP_S, deadline - time.monotonic()))
            after = await self._positions_async(ib, left)
            still_open = await self._open_trades_async(ib)
            remaining_positions = {position_symbol(p.contract): float(p.position) for p in after}
            return flatten_report(
                cancel["cancelled"], closed,
                [order_summary(t, position_symbol(t.contract)) for t in still_open],
                remaining_positions,
            )

        result = self._run(
            lambda: self.gateway.request(run, "emergency_stop"), deadline, "emergency_stop")
        log.info("emergency_stop: %d order(s) cancelled, %d position(s) closed%s",
                 result["cancelled_orders"], len(result["closed"]),
                 "" if result["success"] else f"; incomplete: {result['error']}")
        return result
