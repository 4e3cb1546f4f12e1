"""The TWS venue's account side: positions, account values, our fills, the risk snapshot.

Coroutines for the package's loop thread. ib_async's keyed requests
(``reqAllOpenOrdersAsync``, ``reqPositionsAsync``) run one at a time here;
fills are tracked until IB's position update confirms them, so the risk
snapshot (one pure builder, :func:`~ib_nice_funcs.trading.account.build_snapshot`)
never misses an order that just filled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ...errors import IBNiceFuncsError
from ...fleet.state import WorkingOrder
from ..account import (
    account_number,
    build_snapshot,
    daily_pnl,
    day_trades_used,
    exchange_rates,
    trading_day,
)
from ..contracts import finite, holds, multiplier_of, position_symbol
from ..position_rows import position_dict
from ..results import DONE_STATES, effective_status
from ..risk import PDT_SEC_TYPES, PortfolioSnapshot

if TYPE_CHECKING:  # pragma: no cover
    from ib_async import IB, Position, Trade

    from ...symbols import Instrument
    from ..context import TradingContext

__all__ = ["TwsAccount", "ROUND_TRIP_S"]

log = logging.getLogger("ib_nice_funcs")
T = TypeVar("T")

#: Ceiling for one bookkeeping round trip (open orders, positions, details).
ROUND_TRIP_S = 10.0


class TwsAccount:
    """Account reads and fill tracking over ib_async (loop thread only)."""

    def __init__(self, ctx: TradingContext) -> None:
        self.ctx = ctx
        self.gateway = ctx.gateway
        self._keyed_lock: asyncio.Lock | None = None
        # Our fills IB has not yet confirmed with a position update, by conId:
        # (signed quantity, contract, price). See follow().
        self._unconfirmed: dict[int, tuple[float, Any, float]] = {}
        self._followed: Any = None

    # -- keyed reads -----------------------------------------------------------------------

    async def _keyed(self, make: Callable[[], Awaitable[T]], timeout: float = ROUND_TRIP_S) -> T:
        """Run an ib_async request whose reply is keyed by name, one at a time.

        ``reqAllOpenOrdersAsync`` and ``reqPositionsAsync`` share one future
        per name inside ib_async; two at once would orphan the first.
        """
        if self._keyed_lock is None:
            self._keyed_lock = asyncio.Lock()
        async with self._keyed_lock:
            return await asyncio.wait_for(make(), max(0.1, timeout))

    async def open_trades(self, ib: IB, timeout: float = ROUND_TRIP_S) -> list[Trade]:
        """Every open order on the account, whichever client placed it."""
        got = await self._keyed(ib.reqAllOpenOrdersAsync, timeout)
        account = self.ctx.data_account()
        seen: dict[int, Trade] = {}
        # Only the gateway's answer: ib_async keeps other clients' orders it saw once
        # in ib.openTrades() and never hears of their end (IB tells their owner).
        for trade in got:
            if effective_status(trade) in DONE_STATES:
                continue
            if account and trade.order.account and trade.order.account != account:
                continue
            seen.setdefault(id(trade), trade)
        return list(seen.values())

    async def completed_trades(self, ib: IB, timeout: float = ROUND_TRIP_S) -> list[Trade]:
        """The gateway's completed (filled, cancelled, rejected) API orders of today."""
        return await self._keyed(lambda: ib.reqCompletedOrdersAsync(True), timeout)

    async def ib_positions(self, ib: IB, timeout: float = ROUND_TRIP_S) -> list[Position]:
        """Fresh non-zero positions of the account, asked of the gateway."""
        got = await self._keyed(ib.reqPositionsAsync, timeout)
        account = self.ctx.data_account()
        latest: dict[tuple[str, int], Position] = {}
        for pos in got:
            if account and pos.account != account:
                continue
            latest[(pos.account, pos.contract.conId)] = pos
        return [p for p in latest.values() if p.position]

    async def account_values(self, ib: IB, account: str | None) -> list[Any]:
        """Account values: the live subscription, else a one-off account summary.

        Raises:
            ConnectionFailedError: the link is not current (silent, or IB's 1100
                until 1101 / 1102): held values are not served.
        """
        self.gateway.require_current("account values")
        values = ib.accountValues(account or "")
        if account_number(values, "NetLiquidation", account) is None:
            summary = await asyncio.wait_for(ib.accountSummaryAsync(account or ""), ROUND_TRIP_S)
            values = list(summary) + list(values)
        return values

    # -- the venue's reads (each one request on a connected IB) --------------------------

    async def positions(self, deadline: float, instrument: Instrument | None = None, *,
                        priced: bool = True) -> list[dict[str, Any]]:
        """Non-zero positions as nice_funcs dicts (only ``instrument``'s when given).

        Priced with IB's marks while the link is current (the marks are a
        subscription, so held); a position without one is priced afresh (any
        source; at cost when none answers). ``priced`` False: quantities only.
        """

        async def ask(ib: IB) -> list[tuple[Any, float | None]]:
            positions = await self.ib_positions(ib)
            account = self.ctx.data_account()
            held = ib.portfolio(account or "") if self.gateway.health.current else []
            marks = {item.contract.conId: item for item in held}
            out = []
            for pos in positions:
                if instrument is not None and not holds(instrument, pos.contract):
                    continue
                item = marks.get(pos.contract.conId)
                price = finite(item.marketPrice) if item is not None else None
                out.append((pos, price if price and price > 0 else None))
            return out

        rows = []
        for pos, mark in await self.gateway.request(ask, "positions"):
            if priced:
                rows.append(await self._as_dict(pos, mark, deadline))
            else:
                rows.append({"symbol": position_symbol(pos.contract),
                             "quantity": float(pos.position)})
        return rows

    async def _as_dict(self, pos: Any, mark: float | None, deadline: float) -> dict[str, Any]:
        contract = pos.contract
        mult = multiplier_of(contract)
        symbol = position_symbol(contract)
        avg = (finite(pos.avgCost) or 0.0) / mult
        price = mark
        if price is None:
            try:
                price = await self.ctx.price(symbol, max(deadline, time.monotonic() + 0.5))
            except (IBNiceFuncsError, ValueError, TypeError) as exc:
                log.debug("no price for %s (%s); valuing it at cost", symbol, exc)
                price = avg
        return position_dict(
            symbol, float(pos.position), avg, float(price), mult,
            currency=contract.currency or "USD", con_id=contract.conId, sec_type=contract.secType,
        )

    async def account_number(self, tags: tuple[str, ...], deadline: float) -> float | None:
        """The first of ``tags`` IB reports for the account (None: none of them)."""

        async def ask(ib: IB) -> float | None:
            account = self.ctx.data_account()
            values = await self.account_values(ib, account)
            for tag in tags:
                value = account_number(values, tag, account)
                if value is not None:
                    return value
            return None

        return await self.gateway.request(ask, tags[0])

    # -- fills and the risk snapshot -----------------------------------------------------

    def follow(self, ib: IB) -> None:
        """Track our fills until IB's position update confirms them (once per session).

        The gateway sends an execution and the position update that includes it
        separately; until the update arrives, the risk snapshot adds the fill
        itself, so two quick orders cannot both pass a position limit.
        """
        if self._followed is ib:
            return
        self._followed = ib
        self.ctx.journal.watch(ib)
        self._unconfirmed.clear()
        ib.execDetailsEvent += self._on_fill
        ib.positionEvent += self._on_position

    def _on_fill(self, trade: Trade, fill: Any) -> None:
        account = self.ctx.data_account()
        execution = fill.execution
        if account and execution.acctNumber and execution.acctNumber != account:
            return
        sign = 1.0 if execution.side.upper() in ("BOT", "BUY") else -1.0
        con_id = fill.contract.conId
        delta, _, _ = self._unconfirmed.get(con_id, (0.0, None, 0.0))
        self._unconfirmed[con_id] = (delta + sign * float(execution.shares), fill.contract,
                                     float(execution.price))

    def _on_position(self, position: Any) -> None:
        self._unconfirmed.pop(position.contract.conId, None)

    async def snapshot(self, ib: IB, account: str, working: Sequence[WorkingOrder] = ()
                       ) -> PortfolioSnapshot:
        """What the risk check needs, from IB's cached account and position state.

        ``working``: the fleet's other processes' working opening orders,
        counted as if they filled.

        Raises:
            IBNiceFuncsError: IB reports no net liquidation (the check cannot run).
        """
        values = await self.account_values(ib, account)
        net_liq = account_number(values, "NetLiquidation", account)
        if net_liq is None:
            raise IBNiceFuncsError(
                f"IB reported no NetLiquidation for account {account}, so the risk check "
                "cannot run; nothing was sent. Check the account in TWS / IB Gateway"
            )
        rates = exchange_rates(values, account)
        marks = {item.contract.conId: item for item in ib.portfolio(account)}
        held: dict[int, tuple[Any, float, float]] = {}  # conId -> (contract, qty, price)
        for pos in ib.positions(account):
            price = (finite(pos.avgCost) or 0.0) / multiplier_of(pos.contract)
            held[pos.contract.conId] = (pos.contract, float(pos.position), price)
        for con_id, (delta, contract, price) in self._unconfirmed.items():
            _, qty, cost = held.get(con_id, (contract, 0.0, price))
            held[con_id] = (contract, qty + delta, cost)
        rows = []
        for con_id, (c, qty, cost) in held.items():
            if not qty:
                continue
            item = marks.get(con_id)
            mark = finite(item.marketPrice) if item is not None else None
            price = mark if mark and mark > 0 else cost
            if c.secType == "CASH" and c.symbol == "USD":
                rows.append((position_symbol(c), qty, 1.0, 1.0))
                continue
            rate = rates.get((c.currency or "USD").upper(), 1.0)
            rows.append((position_symbol(c), qty * multiplier_of(c), price, rate))
        ib_daily = None
        for pnl in ib.pnl(account):
            ib_daily = finite(pnl.dailyPnL)
        daily = daily_pnl(
            await self.ctx.daily_pnl_baseline(account, net_liq, ib_daily), ib_daily,
            account_number(values, "PreviousDayEquityWithLoanValue", account),
            account_number(values, "EquityWithLoanValue", account))
        # The pattern-day-trader rule covers securities (stocks, options), not FX or crypto.
        fill_rows = [
            (position_symbol(f.contract), f.execution.side, f.execution.shares, f.execution.time)
            for f in ib.fills()
            if f.contract.secType in PDT_SEC_TYPES
            and (not f.execution.acctNumber or f.execution.acctNumber == account)
        ]
        used = day_trades_used(
            fill_rows, self._today(),
            {"DayTradesRemaining": account_number(values, "DayTradesRemaining", account)},
        )
        return build_snapshot(rows, net_liquidation=net_liq, daily=daily, day_trades=used,
                              working=working)

    def _today(self) -> Any:
        return trading_day(self.ctx.settings.clock())

    async def risk_snapshot(self) -> PortfolioSnapshot:
        """The snapshot of the account data calls see (read-only, no guard)."""

        async def run(ib: IB) -> PortfolioSnapshot:
            self.follow(ib)
            return await self.snapshot(ib, self.ctx.data_account() or "")

        return await self.gateway.request(run, "risk snapshot")
