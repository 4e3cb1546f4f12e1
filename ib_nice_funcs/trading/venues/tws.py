"""The TWS / IB Gateway venue: orders and account reads over ib_async, on the loop thread.

Every method is a coroutine for the package's loop thread (the only thread
that touches ib_async). What it does for an order, in this order, and
nothing is sent unless all of it passes:

1. the live-account guard (:meth:`TradingContext.trading_account`);
2. idempotency: the client order id (IB ``orderRef``) is looked up in the
   ledger, in ib_async's state and, for ids the caller chose or ids sent
   before a reconnect, in the gateway's open orders and executions; a known
   id returns the existing order (``"existing": True``);
3. sizing with the contract's rules, then the risk check against a snapshot
   of IB's positions and account values; an order that adds risk is checked
   and sent under the fleet's account-wide lock, counting the other
   processes' working orders;
4. :func:`build_ib_order` (the order type's row in
   :data:`~ib_nice_funcs.model.ORDER_SPECS`) and ``placeOrder``;
5. with ``wait``, ib_async's trade events until the order fills (MKT, IOC,
   FOK) or IB accepts it (resting orders), or the deadline.

Closing (cancel all, close, flatten) is :mod:`.tws_closing`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ...errors import ConnectionFailedError, IBNiceFuncsError, RiskLimitError
from ...fleet.state import WorkingOrder
from ...model import ORDER_SPECS, OrderRequest
from ..account import account_number, build_snapshot, daily_pnl, day_trades_used, exchange_rates
from ..contracts import ContractSpec, finite, multiplier_of, position_symbol
from ..results import (
    DONE_STATES,
    UNKNOWN,
    as_unknown,
    check_prices_on_grid,
    effective_status,
    is_settled,
    on_the_grid,
    order_result,
    order_summary,
    trade_result,
    waits_for_fill,
)
from ..risk import PDT_SEC_TYPES, PortfolioSnapshot, adds_risk, check_order

if TYPE_CHECKING:  # pragma: no cover
    from ib_async import IB, Order, Position, Trade

    from ..context import TradingContext
    from ..sizing import PlannedOrder

__all__ = ["TwsVenue", "build_ib_order", "ROUND_TRIP_S"]

log = logging.getLogger("ib_nice_funcs")
T = TypeVar("T")

#: Ceiling for one bookkeeping round trip (open orders, positions, details).
ROUND_TRIP_S = 10.0


def build_ib_order(
    request: OrderRequest,
    quantity: float,
    *,
    account: str | None,
    min_tick: float = 0.0,
) -> Order:
    """The ib_async ``Order`` for a validated request, on the tick grid (:func:`on_the_grid`).

    Args:
        request: The validated request (side, type, prices, tif, client order id).
        quantity: Quantity to send (already on the size grid).
        account: Account to send to (None: the gateway's default).
        min_tick: The contract's minimum tick; 0 leaves prices as given.
    """
    from ib_async import Order

    request = on_the_grid(request, min_tick)
    order = Order(
        action=request.side,
        totalQuantity=quantity,
        orderType=request.order_type,
        tif=request.tif,
        orderRef=request.client_order_id,
        transmit=True,
    )
    if account:
        order.account = account
    # The type's row says which request fields go to which Order fields.
    for attribute, field, _ in ORDER_SPECS[request.order_type].ib_fields:
        value = getattr(request, field)
        if value is not None:
            setattr(order, attribute, value)
    return order


class TwsVenue:
    """Orders, positions and account values through TWS / IB Gateway.

    Threading contract: loop thread only; every method is a coroutine (or a
    plain function) for that thread. The order ledger, contract rules and the
    fill tracking live there too.
    """

    name = "tws"

    def __init__(self, ctx: TradingContext) -> None:
        self.ctx = ctx
        self.gateway = ctx.gateway
        self._keyed_lock: asyncio.Lock | None = None
        # Our fills IB has not yet confirmed with a position update, by conId:
        # (signed quantity, contract, price). See follow().
        self._unconfirmed: dict[int, tuple[float, Any, float]] = {}
        self._followed: Any = None
        self.gateway.on_connected.append(self._on_connected)

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

    async def positions(self, ib: IB, timeout: float = ROUND_TRIP_S) -> list[Position]:
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

    async def holdings(self) -> list[tuple[Any, float | None]]:
        """Fresh positions with IB's mark price per unit (None when IB sent none)."""

        async def ask(ib: IB) -> list[tuple[Any, float | None]]:
            positions = await self.positions(ib)
            account = self.ctx.data_account()
            # IB's marks are a subscription: held, so only used while the link is
            # current (else each position is priced afresh).
            held = ib.portfolio(account or "") if self.gateway.health.current else []
            marks = {item.contract.conId: item for item in held}
            out = []
            for pos in positions:
                item = marks.get(pos.contract.conId)
                price = finite(item.marketPrice) if item is not None else None
                out.append((pos, price if price and price > 0 else None))
            return out

        return await self.gateway.request(ask, "positions")

    async def account_number(self, tags: tuple[str, ...]) -> float | None:
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

    async def open_orders(self) -> list[dict[str, Any]]:
        """Every open order on the account as summary rows, sorted by order id."""

        async def run(ib: IB) -> list[dict[str, Any]]:
            trades = await self.open_trades(ib)
            rows = [order_summary(t, position_symbol(t.contract)) for t in trades]
            return sorted(rows, key=lambda r: (r["order_id"] or 0, r["perm_id"] or 0))

        return await self.gateway.request(run, "open orders")

    async def cancel(self, order_id: int | str, deadline: float) -> dict[str, Any]:
        """Cancel one order of this API client by order id (int) or client order id (str)."""

        def match(trade: Trade) -> bool:
            if isinstance(order_id, str):
                return trade.order.orderRef == order_id.strip()
            return trade.order.orderId == int(order_id)

        async def run(ib: IB) -> dict[str, Any]:
            my_id = ib.client.clientId
            candidates = [t for t in ib.trades() if match(t) and t.order.clientId == my_id]
            working = [t for t in candidates if t.orderStatus.status not in DONE_STATES]
            if not working:
                found = [t for t in await self.open_trades(ib) if match(t)]
                mine = [t for t in found if t.order.clientId == my_id]
                if found and not mine:
                    t = found[0]
                    return {**trade_result(t, position_symbol(t.contract)), "success": False,
                            "error": (f"order {order_id} belongs to API client "
                                      f"{t.order.clientId}; IB lets only that client cancel "
                                      "it alone: use cancel_all()")}
                working = mine
            if not working:
                if candidates:
                    t = candidates[-1]
                    return {**trade_result(t, position_symbol(t.contract)), "success": False,
                            "error": f"order {order_id} is already {t.orderStatus.status}"}
                by_ref = isinstance(order_id, str)
                return order_result(success=False, order_id=None if by_ref else order_id,
                                    client_order_id=order_id if by_ref else None,
                                    status="NotFound",
                                    error=f"no open order {order_id!r} on the account")
            trade = working[-1]
            ib.cancelOrder(trade.order)
            await self.wait(trade, True, deadline)
            result = trade_result(trade, position_symbol(trade.contract))
            status = result["status"]
            if status in ("Cancelled", "ApiCancelled"):
                return {**result, "success": True, "error": None, "code": None}
            note = "it filled before the cancel arrived" if status == "Filled" else (
                f"IB has not confirmed the cancel yet (status {status})")
            return {**result, "success": False, "error": result["error"] or note}

        return await self.gateway.request(run, f"cancel_order({order_id!r})")

    # -- what the Client Portal venue asks of this side ----------------------------------

    def last_result(self, client_order_id: str) -> tuple[str, dict[str, Any] | None]:
        """``("none" | "acked" | "unacked", last result)`` for an id sent over TWS."""
        ledger = self.ctx.ledger
        if client_order_id not in ledger:
            return "none", None
        record = ledger[client_order_id]
        if record.trade is None:
            return ("acked" if record.last else "none"), record.last
        last = record.last or trade_result(record.trade, record.symbol)
        acked = effective_status(record.trade) != "PendingSubmit"
        return ("acked" if acked else "unacked"), dict(last)

    def client_order_id_of(self, order_id: int) -> str | None:
        """The client order id of an order this process sent over TWS, by IB order id."""
        for record in self.ctx.ledger:
            trade = record.trade
            if trade is not None and trade.order.orderId == order_id:
                return record.client_order_id
        return None

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
            price = finite(item.marketPrice) if item is not None else None
            if not price or price <= 0:
                price = cost
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
        from ..account import trading_day

        return trading_day(self.ctx.settings.clock())

    async def risk_snapshot(self) -> PortfolioSnapshot:
        """The snapshot of the account data calls see (read-only, no guard)."""

        async def run(ib: IB) -> PortfolioSnapshot:
            self.follow(ib)
            return await self.snapshot(ib, self.ctx.data_account() or "")

        return await self.gateway.request(run, "risk snapshot")

    # -- sending and waiting -------------------------------------------------------------

    async def wait(self, trade: Trade, for_fill: bool, deadline: float) -> bool:
        """Wait on the trade's events until it settles; False at the deadline."""
        if is_settled(trade, for_fill):
            return True
        loop = asyncio.get_running_loop()
        settled: asyncio.Future[bool] = loop.create_future()

        def check(*_: Any) -> None:
            if not settled.done() and is_settled(trade, for_fill):
                settled.set_result(True)

        # Fills too: when IB's status messages are lost, the executions still tell.
        trade.statusEvent += check
        trade.fillEvent += check
        try:
            await asyncio.wait_for(settled, max(0.0, deadline - time.monotonic()))
            return True
        except (asyncio.TimeoutError, TimeoutError):
            return False
        finally:
            trade.statusEvent -= check
            trade.fillEvent -= check

    async def _size(self, ib: IB, order: PlannedOrder, spec: ContractSpec) -> float:
        held = 0.0
        if order.sizer.needs_held:
            held = sum(float(p.position) for p in await self.positions(ib)
                       if p.contract.conId == spec.contract.conId)
        return order.sizer.size(spec, held)

    async def place(
        self,
        order: PlannedOrder,
        deadline: float,
        *,
        ack_deadline: float | None = None,
        placed_elsewhere: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Place (or find) ``order``: guard, idempotency, size, risk, send, wait.

        With ``ack_deadline`` (order failover on) everything up to IB's
        acknowledgement must happen by then, so the Client Portal keeps the
        rest of the time; the wait for a fill may still run to ``deadline``.
        ``placed_elsewhere`` is the Client Portal's result for this id: when
        the gateway knows no order with it, that result is returned and
        nothing is sent.

        Raises:
            LiveTradingDisabledError, RiskLimitError, NoPositionError,
            OrderSizeError, UnknownSymbolError, TradingHaltedError: nothing was sent.
            ConnectionFailedError: the connection dropped (maybe after sending;
                then ``exc.result`` says Unknown).
        """
        request, instrument = order.request, order.instrument
        ledger = self.ctx.ledger

        async def prepare(ib: IB, account: str, coid: str) -> tuple[Trade, bool] | dict[str, Any]:
            existing = await ledger.existing(
                ib, coid, order.explicit_id or placed_elsewhere is not None,
                lambda: self.open_trades(ib), lambda: self.completed_trades(ib))
            if isinstance(existing, dict):
                return {**existing, "existing": True}
            if existing is not None:
                return existing, False
            if placed_elsewhere is not None:
                return {**placed_elsewhere, "existing": True}
            if order.explicit_id:
                # Found nowhere at the gateway: take the id from the other processes.
                refused = await self.ctx.fleet.claim(account, coid)
                if refused is not None:  # the other process may have sent it: unknown here
                    return order_result(success=None, client_order_id=coid, status=UNKNOWN,
                                        error=refused, symbol=instrument.symbol,
                                        side=request.side, order_type=request.order_type)
            spec = await self.ctx.contracts.for_instrument(ib, instrument, order.what)
            check_prices_on_grid(request, spec.min_tick)
            quantity = await self._size(ib, order, spec)
            if await self._adds_risk(ib, account, spec, request.side, quantity, order.unit_usd):
                return await self._send_opening(
                    ib, account, spec, request, quantity, order.unit_usd,
                    min(deadline, ack_deadline or deadline)), True
            await self._check_risk(ib, account, spec, request.side, quantity, order.unit_usd)
            # Synchronous from here to the return: a cancellation at the ack deadline
            # lands before the send or not at all, so the ledger tells which.
            return self.send(ib, spec, request, quantity, account), True

        async def pipeline(ib: IB) -> dict[str, Any]:
            account = await self.ctx.trading_account()
            self.follow(ib)
            coid = request.client_order_id
            async with ledger.lock(coid):
                if ack_deadline is None:
                    got = await prepare(ib, account, coid)
                else:
                    got = await asyncio.wait_for(
                        prepare(ib, account, coid), max(0.05, ack_deadline - time.monotonic()))
                if isinstance(got, dict):
                    return got
                trade, fresh = got
            for_fill = waits_for_fill(request.order_type, request.tif)
            if not order.wait:
                settled = True
            elif ack_deadline is not None and fresh:
                # Acknowledged by the ack deadline, or the caller fails over (after
                # asking the portal whether the order arrived anyway).
                settled = await self.wait(trade, False, ack_deadline)
                if settled and for_fill:
                    settled = await self.wait(trade, True, deadline)
            else:
                settled = await self.wait(trade, for_fill, deadline)
            result = trade_result(trade, instrument.symbol)
            if not fresh:
                result["existing"] = True
            if not order.wait and result["status"] == "PendingSubmit":
                result["success"] = True  # sent; the caller chose not to wait
            elif not settled:
                result["error"] = result["error"] or _late_note(result, for_fill)
                if result["status"] == "PendingSubmit":
                    as_unknown(result, result["error"])  # may be working or filled at IB
                elif result["success"]:
                    log.warning("%s: %s", order.what, result["error"])
                    result["error"] = None
                    result["timed_out"] = True
            ledger.remember(coid, instrument.symbol, trade, ib, result)
            return result

        try:
            return await self.gateway.request(pipeline, order.what)
        except ConnectionFailedError as exc:
            if request.client_order_id in ledger:
                exc.result = self.unknown(order, (  # type: ignore[attr-defined]
                    f"{exc}. The order was sent before the drop"))
            raise

    @staticmethod
    def unknown(order: PlannedOrder, cause: str) -> dict[str, Any]:
        """The result of an order whose fate is unknown (may have been sent)."""
        coid = order.client_order_id
        return order_result(
            success=None, client_order_id=coid, status=UNKNOWN,
            error=(f"{cause}; call again with client_order_id={coid!r} to get its state "
                   "(it will not be sent twice)"),
            symbol=order.instrument.symbol, side=order.request.side,
            order_type=order.request.order_type)

    async def _send_opening(
        self, ib: IB, account: str, spec: ContractSpec, request: OrderRequest, quantity: float,
        unit_usd: float | None, deadline: float,
    ) -> Trade:
        """Check and send an order that adds risk under the account-wide lock of the fleet.

        Inside the lock the halt is read, the check counts the other
        processes' opening orders, and this order is recorded for theirs
        before the lock is released: counted until it ends, and after a fill
        until every process's position view has had time to include it.

        Raises:
            TradingHaltedError, FleetUnavailableError, RiskLimitError: nothing sent.
        """
        fleet = self.ctx.fleet
        async with fleet.opening(account, deadline - time.monotonic()):
            working = await fleet.working_elsewhere(account)
            await self._check_risk(ib, account, spec, request.side, quantity, unit_usd, working)
            trade = self.send(ib, spec, request, quantity, account)
            await fleet.reserve(account, request.client_order_id, spec.symbol, request.side,
                                self._order_value_usd(ib, spec, account, quantity, unit_usd))
        self._release_when_done(account, trade, request.client_order_id)
        return trade

    def _release_when_done(self, account: str, trade: Trade, client_order_id: str) -> None:
        """Stop showing the order to the fleet once it ended (after a fill: a little later)."""

        def ended(*_: Any) -> None:
            if effective_status(trade) in DONE_STATES:
                trade.statusEvent -= ended
                self.ctx.fleet.order_ended_soon(account, client_order_id,
                                                bool(trade.orderStatus.filled))

        trade.statusEvent += ended
        ended()

    def _order_value_usd(
        self, ib: IB, spec: ContractSpec, account: str, quantity: float, unit_usd: float | None
    ) -> float:
        price = unit_usd
        if price is None or price <= 0:
            price = self.mark_usd(ib, spec, account)
        return abs(quantity) * price * spec.multiplier

    async def _adds_risk(
        self, ib: IB, account: str, spec: ContractSpec, side: str, quantity: float,
        unit_usd: float | None,
    ) -> bool:
        """Whether the order grows the position (opening: the fleet's lock and halt apply)."""
        snapshot = await self.snapshot(ib, account)
        value = self._order_value_usd(ib, spec, account, quantity, unit_usd)
        return adds_risk(snapshot, spec.symbol, side, value)

    async def _check_risk(
        self, ib: IB, account: str, spec: ContractSpec, side: str, quantity: float,
        unit_usd: float | None, working: Sequence[WorkingOrder] = (),
    ) -> None:
        """Raise RiskLimitError when the order would breach a limit (nothing is sent)."""
        snapshot = await self.snapshot(ib, account, working)
        value = self._order_value_usd(ib, spec, account, quantity, unit_usd)
        limits = self.ctx.limits
        # Agents may close any position intraday, so every opening order of a
        # security counts as a potential day trade for the PDT guard.
        day_trade = limits.pdt_guard and spec.contract.secType in PDT_SEC_TYPES
        breach = check_order(limits, snapshot, spec.symbol, side, value, opens_day_trade=day_trade)
        if breach is not None:
            log.debug("risk breach %s for %s", breach.limit, spec.symbol)
            raise RiskLimitError(breach.message, breach)

    def mark_usd(self, ib: IB, spec: ContractSpec, account: str) -> float:
        """IB's mark for a held contract in USD (0.0 when there is none)."""
        for item in ib.portfolio(account):
            if item.contract.conId == spec.contract.conId:
                return finite(item.marketPrice) or 0.0
        return 0.0

    def send(self, ib: IB, spec: ContractSpec, request: OrderRequest, quantity: float,
             account: str) -> Trade:
        """Put the order on the wire (the only ``placeOrder``) and record it."""
        order = build_ib_order(request, quantity, account=account, min_tick=spec.min_tick)
        trade = ib.placeOrder(spec.contract, order)
        self.ctx.ledger.remember(request.client_order_id, spec.symbol, trade, ib, None)
        self.ctx.journal.sent(request, spec.symbol, quantity, trade, account,
                              mark=self.mark_usd(ib, spec, account))
        log.info(
            "sent %s %s %g %s (client order id %s, order id %s)",
            request.order_type, request.side, quantity, spec.symbol,
            request.client_order_id, trade.order.orderId,
        )
        return trade

    # -- reconnect hook --------------------------------------------------------------------

    async def _on_connected(self, ib: IB) -> None:
        """After every (re)connect: re-attach the orders this process sent to the new session."""
        self.follow(ib)
        ledger = self.ctx.ledger
        if len(ledger):
            matched = ledger.reattach(ib)
            log.info("reconnected: %d of %d known orders found at the gateway",
                     matched, len(ledger))


def _late_note(result: dict[str, Any], for_fill: bool) -> str:
    status = result["status"]
    ref = result["client_order_id"]
    if status == "PendingSubmit":
        return (
            "IB did not acknowledge the order in time; it may still arrive. Call again with "
            f"client_order_id={ref!r} to get its state (it will not be sent twice)"
        )
    goal = "filled" if for_fill else "accepted"
    return (
        f"not {goal} before the timeout; the order is {status} at IB (order id "
        f"{result['order_id']}): cancel_order({result['order_id']}) to stop it"
    )
