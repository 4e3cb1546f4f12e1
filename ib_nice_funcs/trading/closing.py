"""ClosingDesk: getting out (cancel_all, kill_switch, chunk_kill, close_position,
emergency_stop) and the fleet's halt (resume_trading).

Closing orders only ever reduce a position, which the risk limits always
allow (a limit must never trap an agent in a position), so they skip the
risk snapshot: a kill switch keeps working when IB's account values are
missing. They still pass the live-account guard. The router decides the
venue: with ``order_failover`` on and TWS / IB Gateway refused before
anything was sent over it, cancel_all, kill_switch, close_position and
emergency_stop run through the Client Portal (results carry ``source``
"portal"); chunk_kill stays TWS-only.

Every helper is a coroutine ``*_async`` for the loop thread plus a blocking
one-liner over it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..model import CancelAllResult, FlattenReport, OrderResult
from ..symbols import parse_symbol
from .desk import Desk, blocking
from .results import ChunkKillResult, ResumeResult, round_quantity
from .validation import validate_usd_amount

__all__ = ["ClosingDesk"]

log = logging.getLogger("ib_nice_funcs")


class ClosingDesk(Desk):
    """Cancel, flatten and halt (see the module docstring)."""

    # -- coroutines --------------------------------------------------------------------

    async def cancel_all_async(self, *, timeout: float | None = None) -> CancelAllResult:
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
        return await self.router.cancel_all(self.ctx.deadline(timeout))

    async def close_position_async(self, symbol: Any, *,
                                   timeout: float | None = None) -> OrderResult:
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
        return await self.router.close(instrument, self.ctx.deadline(timeout), cancel=False,
                                       what=f"close_position({instrument.symbol})")

    async def kill_switch_async(self, symbol: Any, *,
                                timeout: float | None = None) -> OrderResult:
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
        return await self.router.close(instrument, self.ctx.deadline(timeout), cancel=True,
                                       what=f"kill_switch({instrument.symbol})")

    async def chunk_kill_async(self, symbol: Any, max_order_size: float | None = None,
                               slippage: Any = None, *,
                               timeout: float | None = None) -> ChunkKillResult:
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
        per_child = self._seconds(timeout)
        deadline = time.monotonic() + per_child
        # The child count is unbounded (a $3 cap on a large position means many
        # children); the time is not.
        overall = time.monotonic() + self._chunk_budget(per_child)
        router, venue = self.router, self.router.tws.closing
        account = await router.account(deadline)
        what = f"chunk_kill({instrument.symbol})"
        cancelled, pos, mark, increment = await router.within(
            venue.chunk_start(instrument, account, deadline), deadline, what)
        outcome: ChunkKillResult = {
            "success": True, "symbol": instrument.symbol, "chunks": [], "filled_qty": 0.0,
            "remaining_qty": 0.0, "cancelled_orders": cancelled, "error": None,
        }
        if pos is None:
            return outcome
        remaining = abs(float(pos.position))
        step = remaining
        if limit_usd is not None:
            price = mark if mark is not None else await self.ctx.price(instrument.symbol,
                                                                        deadline)
            unit_usd = await self.ctx.usd_per_unit(instrument, price, deadline)
            step = max(round_quantity(limit_usd / unit_usd, increment), increment)
        side = 1.0 if float(pos.position) > 0 else -1.0
        while remaining > 0 and time.monotonic() < overall:
            child_deadline = min(time.monotonic() + per_child, overall)
            result = await router.within(
                venue.chunk(instrument, account, step, side, child_deadline), child_deadline,
                what)
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
                f"{self.ctx.settings.chunked_order_budget_s:g} s (raise "
                "IB_NICE_FUNCS_CHUNKED_BUDGET_S or the max order size)"
            )
        return outcome

    async def emergency_stop_async(self, *, timeout: float | None = None) -> FlattenReport:
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
        result = await self.router.emergency_stop(time.monotonic() + self._stop_budget(timeout))
        log.info("emergency_stop%s: %d order(s) cancelled, %d position(s) closed%s",
                 " through the Client Portal" if result.get("source") == "portal" else "",
                 result["cancelled_orders"], len(result["closed"]),
                 "" if result["success"] else f"; incomplete: {result['error']}")
        return result

    async def resume_trading_async(self, *, timeout: float | None = None) -> ResumeResult:
        """Lift the halt ``emergency_stop()`` latched, for every agent process of the account.

        Blocks up to ``timeout`` seconds (connects first when the account is
        not configured, to learn it).

        Returns:
            ``{"success": True, "account", "was_halted", "halted_by", "error": None}``.

        Raises:
            FleetUnavailableError: the shared state (Redis) is unreachable; the halt stays.
            ConnectionFailedError: the account is not configured and the gateway is down.
        """
        deadline = self.ctx.deadline(timeout)
        account = self.ctx.known_account()
        if not account:
            account = await self.router.within(self.ctx.trading_account(), deadline,
                                               "resume_trading")
        lifted = await self.router.within(self.ctx.fleet.resume(account), deadline,
                                          "resume_trading")
        if lifted is not None:
            log.warning("trading on account %s resumed (the halt by process %s is lifted)",
                        account, lifted.by)
        return {"success": True, "account": account, "was_halted": lifted is not None,
                "halted_by": lifted.by if lifted is not None else None, "error": None}

    def budget(self, method: str, timeout: float | None = None) -> float:
        """``emergency_stop`` gets three times the setting by default and ``chunk_kill``
        its whole chunked budget; the rest as :meth:`Desk.budget`."""
        if method == "emergency_stop":
            return self._stop_budget(timeout)
        if method == "chunk_kill":
            per_child = self._seconds(timeout)
            return self._chunk_budget(per_child) + per_child
        return super().budget(method, timeout)

    def _chunk_budget(self, per_child: float) -> float:
        return max(per_child, self.ctx.settings.chunked_order_budget_s)

    def _stop_budget(self, timeout: float | None) -> float:
        """emergency_stop's budget: ``timeout``, else three times the setting."""
        if timeout is not None:
            return self._seconds(timeout)
        return 3 * self.ctx.settings.timeout

    # -- the blocking API: one-liners over the coroutines ---------------------------------

    cancel_all = blocking(cancel_all_async)
    close_position = blocking(close_position_async)
    kill_switch = blocking(kill_switch_async)
    chunk_kill = blocking(chunk_kill_async)
    resume_trading = blocking(resume_trading_async)
    emergency_stop = blocking(emergency_stop_async)


