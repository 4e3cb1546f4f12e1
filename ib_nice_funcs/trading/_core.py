"""TraderCore: the plumbing every trading helper shares.

It owns what must stay consistent across calls and reconnects: the
client-order-id ledger (idempotency), the contract specs (tick and size
rules), the daily P&L baseline, and the lock that keeps ib_async's keyed
requests (``openOrders``, ``positions``) from overlapping. All of that state
is touched only on the loop thread; the synchronous methods cross in through
:meth:`IBGateway.call`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import (
    ConnectionFailedError,
    IBNiceFuncsError,
    OrderRejectedError,
    RequestTimeoutError,
    RiskLimitError,
)
from ..fleet.guard import FleetGuard
from ..fleet.state import WorkingOrder, with_working_orders
from ..symbols import Instrument
from ..trade_journal.recorder import JournalRecorder
from .account import (
    DailyBaseline,
    account_number,
    check_live_allowed,
    day_trades_used,
    exchange_rates,
    pick_account,
    signed_values_usd,
    trading_day,
)
from .contracts import ContractRules, ContractSpec, finite, multiplier_of, position_symbol
from .failover import PortalFailover
from .failover_closing import PortalClosing
from .ledger import OrderLedger
from .results import (
    DONE_STATES,
    UNKNOWN,
    as_unknown,
    build_ib_order,
    check_prices_on_grid,
    effective_status,
    is_settled,
    order_result,
    trade_result,
    waits_for_fill,
)
from .risk import PortfolioSnapshot, RiskLimits, adds_risk, check_order

if TYPE_CHECKING:  # pragma: no cover
    from ib_async import IB, Position, Trade

    from ..client import Client
    from .validation import OrderRequest

__all__ = ["TraderCore", "ContractSpec"]

log = logging.getLogger("ib_nice_funcs")
T = TypeVar("T")

#: Extra seconds the thread-side wait allows beyond the call's own deadline, so
#: the loop side can finish with a proper result instead of being cut off.
_GRACE_S = 1.0
#: Ceiling for one bookkeeping round trip (open orders, positions, details).
_ROUND_TRIP_S = 10.0
#: Security types the pattern-day-trader rule applies to.
_PDT_SEC_TYPES = frozenset({"STK", "OPT", "WAR"})

Sizing = Callable[["IB", "ContractSpec"], Awaitable[float]]


class TraderCore:
    """Shared plumbing of :class:`~ib_nice_funcs.trading.orders.Trader`.

    Threading contract: the synchronous methods of subclasses may be called
    from any thread except the loop thread; the ``*_async`` helpers and all
    mutable state belong to the loop thread.
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self.settings = client.settings
        self.gateway = client.gateway
        s = self.settings
        self.limits = RiskLimits(
            max_position_usd=s.max_position_usd,
            max_daily_loss_usd=s.max_daily_loss_usd,
            max_exposure_usd=s.max_exposure_usd,
            pdt_guard=s.pdt_guard,
        )
        self._ledger = OrderLedger()
        self._contracts = ContractRules(self.gateway)
        self._keyed_lock: asyncio.Lock | None = None
        #: Serialises the flattening helpers (read position, then close it): two at
        #: once would both close the same position and reverse it (loop side).
        self._flatten_lock: asyncio.Lock | None = None
        self._baseline = DailyBaseline()
        #: The state shared with the account's other agent processes (halt, risk
        #: lock, client order id claims, day-start value): loop side.
        self.fleet = FleetGuard(s)
        # Our fills IB has not yet confirmed with a position update, by conId:
        # (signed quantity, contract, price). See _follow().
        self._unconfirmed: dict[int, tuple[float, Any, float]] = {}
        self._followed: Any = None
        # The Client Portal side (order_failover); thread-side, owns its own locks.
        self._failover = PortalFailover(self)
        self._portal_closing = PortalClosing(self._failover)
        #: The trade journal: told of every order sent, refused or failed over, and
        #: (through :meth:`_follow`) of their status changes, fills and commissions.
        self.journal = JournalRecorder(self.settings, self.settings.client_id, client)
        self.gateway.on_connected.append(self._on_connected)

    # -- thread side ---------------------------------------------------------

    def _deadline(self, timeout: float | None) -> float:
        """Monotonic deadline for a call; ``timeout`` None means the setting."""
        return time.monotonic() + self.client.resolve_timeout(timeout)

    def _run(self, factory: Callable[[], Awaitable[T]], deadline: float, what: str) -> T:
        """Run ``factory()`` on the loop; block until done or the deadline (+grace)."""
        remaining = max(0.05, deadline - time.monotonic())
        return self.gateway.call(factory, remaining + _GRACE_S, what)

    def _require_trading(self, deadline: float) -> str:
        """The account orders go to, after the live-account guard (may connect).

        Raises:
            LiveTradingDisabledError: a live account without allow_live (nothing sent).
            ConfigurationError: several accounts and none chosen.
            ConnectionFailedError, RequestTimeoutError: the gateway is unreachable.
        """
        configured = self.settings.account
        if configured:
            # Refuse before even connecting when the setting already says "live".
            check_live_allowed(configured, self.settings.allow_live)
        return self._run(self._trading_account_async, deadline, "trading permission check")

    def _require_route(self, deadline: float) -> str | ConnectionFailedError:
        """Like :meth:`_require_trading`, but an unreachable TWS is returned, not raised,
        when orders may fail over to the Client Portal (``order_failover``).

        Raises:
            ConnectionFailedError: TWS is unreachable and failover is off.
            Otherwise like :meth:`_require_trading`.
        """
        try:
            return self._require_trading(deadline)
        except ConnectionFailedError as exc:
            if not self._failover.active:
                raise
            return exc

    def _usd_per_unit(self, instrument: Instrument, price: float, deadline: float) -> float:
        """USD value of one unit of ``instrument`` at ``price`` (quote currency converted)."""
        if instrument.asset_class == "fx" and instrument.ib_symbol == "USD":
            return 1.0
        return price * self._usd_rate(instrument.currency, deadline)

    def _usd_rate(self, currency: str, deadline: float) -> float:
        """USD per unit of ``currency`` from IB's quotes; 1.0 (logged) when unknown."""
        currency = (currency or "USD").upper()
        if currency == "USD":
            return 1.0
        timeout = max(0.5, deadline - time.monotonic())
        for pair, invert in ((f"{currency}USD", False), (f"USD{currency}", True)):
            try:
                px = self.client.price(pair, timeout=timeout)
            except (IBNiceFuncsError, ValueError):
                continue
            if px > 0:
                return 1.0 / px if invert else px
        log.warning("no USD rate for %s; risk limits treat its prices as USD", currency)
        return 1.0

    def _raise_for(self, result: dict[str, Any], what: str) -> dict[str, Any]:
        """Return ``result`` when it succeeded; else raise the matching error.

        The raised error carries the result dict as ``exc.result`` so that the
        module-level functions can return it.
        """
        if result.get("success"):
            return result
        status = result.get("status")
        if status in ("PendingSubmit", UNKNOWN):
            exc: IBNiceFuncsError = RequestTimeoutError(
                f"{what}: {result.get('error') or 'no acknowledgement from IB'}"
            )
        else:
            code = result.get("code")
            exc = OrderRejectedError(
                f"{what}: {'IB error ' + str(code) + ': ' if code else ''}"
                f"{result.get('error') or 'the order ended ' + str(status)}",
                code,
            )
        exc.result = result  # type: ignore[attr-defined]
        raise exc

    # -- loop side: connection, account, keyed requests -------------------------

    async def _trading_account_async(self) -> str:
        await self.gateway.ib_async()
        account = pick_account(self.gateway.account, self.gateway.managed_accounts)
        check_live_allowed(account, self.settings.allow_live)
        return account

    def _data_account(self) -> str | None:
        """The account data calls filter on (None: all the login manages)."""
        try:
            return pick_account(self.gateway.account, self.gateway.managed_accounts)
        except IBNiceFuncsError:
            return None

    async def _keyed(self, make: Callable[[], Awaitable[T]], timeout: float = _ROUND_TRIP_S) -> T:
        """Run an ib_async request whose reply is keyed by name, one at a time.

        ``reqAllOpenOrdersAsync`` and ``reqPositionsAsync`` share one future
        per name inside ib_async; two at once would orphan the first.
        """
        if self._keyed_lock is None:
            self._keyed_lock = asyncio.Lock()
        async with self._keyed_lock:
            return await asyncio.wait_for(make(), max(0.1, timeout))

    async def _open_trades_async(self, ib: IB, timeout: float = _ROUND_TRIP_S) -> list[Trade]:
        """Every open order on the account, whichever client placed it."""
        got = await self._keyed(ib.reqAllOpenOrdersAsync, timeout)
        account = self._data_account()
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

    async def _completed_trades_async(self, ib: IB, timeout: float = _ROUND_TRIP_S) -> list[Trade]:
        """The gateway's completed (filled, cancelled, rejected) API orders of today."""
        return await self._keyed(lambda: ib.reqCompletedOrdersAsync(True), timeout)

    async def _positions_async(self, ib: IB, timeout: float = _ROUND_TRIP_S) -> list[Position]:
        """Fresh non-zero positions of the account, asked of the gateway."""
        got = await self._keyed(ib.reqPositionsAsync, timeout)
        account = self._data_account()
        latest: dict[tuple[str, int], Position] = {}
        for pos in got:
            if account and pos.account != account:
                continue
            latest[(pos.account, pos.contract.conId)] = pos
        return [p for p in latest.values() if p.position]

    # -- loop side: risk snapshot ---------------------------------------------------

    async def _account_values_async(self, ib: IB, account: str | None) -> list[Any]:
        """Account values: the live subscription, else a one-off account summary.

        Raises:
            ConnectionFailedError: the link is not current (silent, or IB's 1100
                until 1101 / 1102): held values are not served.
        """
        self.gateway.require_current("account values")
        values = ib.accountValues(account or "")
        if account_number(values, "NetLiquidation", account) is None:
            summary = await asyncio.wait_for(ib.accountSummaryAsync(account or ""), _ROUND_TRIP_S)
            values = list(summary) + list(values)
        return values

    def _follow(self, ib: IB) -> None:
        """Track our fills until IB's position update confirms them (once per session).

        The gateway sends an execution and the position update that includes it
        separately; until the update arrives, the risk snapshot adds the fill
        itself, so two quick orders cannot both pass a position limit.
        """
        if self._followed is ib:
            return
        self._followed = ib
        self.journal.watch(ib)
        self._unconfirmed.clear()
        ib.execDetailsEvent += self._on_fill
        ib.positionEvent += self._on_position

    def _on_fill(self, trade: Trade, fill: Any) -> None:
        account = self._data_account()
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

    async def _snapshot_async(self, ib: IB, account: str, working: Sequence[WorkingOrder] = ()
                              ) -> PortfolioSnapshot:
        """What the risk check needs, from IB's cached account and position state.

        ``working``: the fleet's other processes' working opening orders,
        counted as if they filled.

        Raises:
            IBNiceFuncsError: IB reports no net liquidation (the check cannot run).
        """
        values = await self._account_values_async(ib, account)
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
        today = trading_day(self.settings.clock())
        if self._baseline.day != today:
            # One baseline for every process of the account: the first one's.
            self._baseline.day = today
            self._baseline.start_value = await self.fleet.day_start(
                account, today.isoformat(), net_liq)
        daily = self._baseline.pnl(net_liq, today, ib_daily)
        # IB's own start-of-day reference survives an agent restart mid-day; take
        # whichever estimate shows the larger loss.
        prev = account_number(values, "PreviousDayEquityWithLoanValue", account)
        ewl = account_number(values, "EquityWithLoanValue", account)
        if ib_daily is None and prev and ewl is not None:
            daily = min(daily, ewl - prev)
        # The pattern-day-trader rule covers securities (stocks, options), not FX or crypto.
        fill_rows = [
            (position_symbol(f.contract), f.execution.side, f.execution.shares, f.execution.time)
            for f in ib.fills()
            if f.contract.secType in _PDT_SEC_TYPES
            and (not f.execution.acctNumber or f.execution.acctNumber == account)
        ]
        used = day_trades_used(
            fill_rows, today,
            {"DayTradesRemaining": account_number(values, "DayTradesRemaining", account)},
        )
        positions_usd = with_working_orders(signed_values_usd(rows), working)
        return PortfolioSnapshot(
            positions_usd=positions_usd,
            net_liquidation=net_liq,
            daily_pnl=daily,
            is_margin=True,
            day_trades_last_5_days=used,
        )

    def risk_snapshot(self, *, timeout: float | None = None) -> PortfolioSnapshot:
        """What the risk check sees now: positions in USD, net liquidation, daily P&L,
        day trades; for dashboards (read-only: no live-account guard, nothing sent).

        Blocks up to ``timeout`` seconds (default: the ``timeout`` setting).

        Raises:
            ConnectionFailedError, RequestTimeoutError: the gateway failed.
            IBNiceFuncsError: IB reports no net liquidation.
        """
        deadline = self._deadline(timeout)

        async def run(ib: IB) -> PortfolioSnapshot:
            self._follow(ib)
            return await self._snapshot_async(ib, self._data_account() or "")

        return self._run(lambda: self.gateway.request(run, "risk snapshot"), deadline,
                         "risk snapshot")

    # -- loop side: sending and waiting --------------------------------------------

    async def _wait_async(self, trade: Trade, for_fill: bool, deadline: float) -> bool:
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

    async def _place_async(
        self,
        instrument: Instrument,
        request: OrderRequest,
        sizing: Sizing,
        unit_usd: float | None,
        *,
        thorough: bool,
        wait: bool,
        deadline: float,
        what: str,
        ack_deadline: float | None = None,
        placed_elsewhere: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The order pipeline on the loop: guard, idempotency, size, risk, send, wait.

        With ``ack_deadline`` (order failover on) everything up to IB's
        acknowledgement must happen by then, so the Client Portal keeps the
        rest of the time; the wait for a fill may still run to ``deadline``.
        ``placed_elsewhere`` is the Client Portal's result for this id: when
        the gateway knows no order with it, that result is returned and
        nothing is sent.

        Raises:
            LiveTradingDisabledError, RiskLimitError, NoPositionError,
            OrderSizeError, UnknownSymbolError: nothing was sent.
            ConnectionFailedError: the connection dropped (maybe after sending).
        """

        async def prepare(ib: IB, account: str, coid: str) -> tuple[Trade, bool] | dict[str, Any]:
            existing = await self._ledger.existing(
                ib, coid, thorough or placed_elsewhere is not None,
                lambda: self._open_trades_async(ib), lambda: self._completed_trades_async(ib))
            if isinstance(existing, dict):
                return {**existing, "existing": True}
            if existing is not None:
                return existing, False
            if placed_elsewhere is not None:
                return {**placed_elsewhere, "existing": True}
            if thorough:
                # Found nowhere at the gateway: take the id from the other processes.
                refused = await self.fleet.claim(account, coid)
                if refused is not None:  # the other process may have sent it: unknown here
                    return order_result(success=None, client_order_id=coid, status=UNKNOWN,
                                        error=refused, symbol=instrument.symbol,
                                        side=request.side, order_type=request.order_type)
            spec = await self._contracts.for_instrument(ib, instrument, what)
            check_prices_on_grid(request, spec.min_tick)
            quantity = await sizing(ib, spec)
            if await self._adds_risk_async(ib, account, spec, request.side, quantity, unit_usd):
                return await self._send_opening_async(
                    ib, account, spec, request, quantity, unit_usd,
                    min(deadline, ack_deadline or deadline)), True
            await self._check_risk_async(ib, account, spec, request.side, quantity, unit_usd)
            # Synchronous from here to the return: a cancellation at the ack deadline
            # lands before the send or not at all, so the ledger tells which.
            return self._send(ib, spec, request, quantity, account), True

        async def pipeline(ib: IB) -> dict[str, Any]:
            account = await self._trading_account_async()
            self._follow(ib)
            coid = request.client_order_id
            async with self._ledger.lock(coid):
                if ack_deadline is None:
                    got = await prepare(ib, account, coid)
                else:
                    got = await asyncio.wait_for(
                        prepare(ib, account, coid), max(0.05, ack_deadline - time.monotonic()))
                if isinstance(got, dict):
                    return got
                trade, fresh = got
            for_fill = waits_for_fill(request.order_type, request.tif)
            if not wait:
                settled = True
            elif ack_deadline is not None and fresh:
                # Acknowledged by the ack deadline, or the caller fails over (after
                # asking the portal whether the order arrived anyway).
                settled = await self._wait_async(trade, False, ack_deadline)
                if settled and for_fill:
                    settled = await self._wait_async(trade, True, deadline)
            else:
                settled = await self._wait_async(trade, for_fill, deadline)
            result = trade_result(trade, instrument.symbol)
            if not fresh:
                result["existing"] = True
            if not wait and result["status"] == "PendingSubmit":
                result["success"] = True  # sent; the caller chose not to wait
            elif not settled:
                result["error"] = result["error"] or self._late_note(result, for_fill)
                if result["status"] == "PendingSubmit":
                    as_unknown(result, result["error"])  # may be working or filled at IB
                elif result["success"]:
                    log.warning("%s: %s", what, result["error"])
                    result["error"] = None
                    result["timed_out"] = True
            self._remember(coid, instrument.symbol, trade, ib, result)
            return result

        try:
            return await self.gateway.request(pipeline, what)
        except ConnectionFailedError as exc:
            if request.client_order_id in self._ledger:
                exc.result = order_result(  # type: ignore[attr-defined]
                    success=None,
                    client_order_id=request.client_order_id,
                    status=UNKNOWN,
                    error=(
                        f"{exc}. The order was sent before the drop; call again with "
                        f"client_order_id={request.client_order_id!r} to get its state "
                        "(it will not be sent twice)"
                    ),
                    symbol=instrument.symbol,
                    side=request.side,
                    order_type=request.order_type,
                )
            raise

    @staticmethod
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

    async def _send_opening_async(
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
        async with self.fleet.opening(account, deadline - time.monotonic()):
            working = await self.fleet.working_elsewhere(account)
            await self._check_risk_async(ib, account, spec, request.side, quantity, unit_usd,
                                         working)
            trade = self._send(ib, spec, request, quantity, account)
            await self.fleet.reserve(account, request.client_order_id, spec.symbol,
                                      request.side,
                                      self._order_value_usd(ib, spec, account, quantity, unit_usd))
        self._release_when_done(account, trade, request.client_order_id)
        return trade

    def _release_when_done(self, account: str, trade: Trade, client_order_id: str) -> None:
        """Stop showing the order to the fleet once it ended (after a fill: a little later)."""

        def ended(*_: Any) -> None:
            if effective_status(trade) in DONE_STATES:
                trade.statusEvent -= ended
                self.fleet.order_ended_soon(account, client_order_id,
                                            bool(trade.orderStatus.filled))

        trade.statusEvent += ended
        ended()

    def _order_value_usd(
        self, ib: IB, spec: ContractSpec, account: str, quantity: float, unit_usd: float | None
    ) -> float:
        price = unit_usd
        if price is None or price <= 0:
            price = self._mark_usd(ib, spec, account)
        return abs(quantity) * price * spec.multiplier

    async def _adds_risk_async(
        self, ib: IB, account: str, spec: ContractSpec, side: str, quantity: float,
        unit_usd: float | None,
    ) -> bool:
        """Whether the order grows the position (opening: the fleet's lock and halt apply)."""
        snapshot = await self._snapshot_async(ib, account)
        value = self._order_value_usd(ib, spec, account, quantity, unit_usd)
        return adds_risk(snapshot, spec.symbol, side, value)

    async def _check_risk_async(
        self, ib: IB, account: str, spec: ContractSpec, side: str, quantity: float,
        unit_usd: float | None, working: Sequence[WorkingOrder] = (),
    ) -> None:
        """Raise RiskLimitError when the order would breach a limit (nothing is sent).

        ``working``: the other processes' working opening orders, counted too.
        """
        snapshot = await self._snapshot_async(ib, account, working)
        value = self._order_value_usd(ib, spec, account, quantity, unit_usd)
        # Agents may close any position intraday, so every opening order of a
        # security counts as a potential day trade for the PDT guard.
        day_trade = self.limits.pdt_guard and spec.contract.secType in _PDT_SEC_TYPES
        breach = check_order(
            self.limits, snapshot, spec.symbol, side, value, opens_day_trade=day_trade)
        if breach is not None:
            log.debug("risk breach %s for %s", breach.limit, spec.symbol)
            raise RiskLimitError(breach.message, breach)

    def _mark_usd(self, ib: IB, spec: ContractSpec, account: str) -> float:
        """IB's mark for a held contract in USD (0.0 when there is none)."""
        for item in ib.portfolio(account):
            if item.contract.conId == spec.contract.conId:
                return finite(item.marketPrice) or 0.0
        return 0.0

    def _send(
        self, ib: IB, spec: ContractSpec, request: OrderRequest, quantity: float, account: str
    ) -> Trade:
        order = build_ib_order(request, quantity, account=account, min_tick=spec.min_tick)
        trade = ib.placeOrder(spec.contract, order)
        self._remember(request.client_order_id, spec.symbol, trade, ib, None)
        self.journal.sent(request, spec.symbol, quantity, trade, account,
                          mark=self._mark_usd(ib, spec, account))
        log.info(
            "sent %s %s %g %s (client order id %s, order id %s)",
            request.order_type, request.side, quantity, spec.symbol,
            request.client_order_id, trade.order.orderId,
        )
        return trade

    def _remember(
        self, coid: str, symbol: str, trade: Trade | None, ib: IB, result: dict[str, Any] | None
    ) -> None:
        self._ledger.remember(coid, symbol, trade, ib, result)

    # -- reconnect hook --------------------------------------------------------------

    async def _on_connected(self, ib: IB) -> None:
        """After every (re)connect: re-attach the orders this Trader sent to the new session."""
        self._follow(ib)
        if len(self._ledger):
            matched = self._ledger.reattach(ib)
            log.info("reconnected: %d of %d known orders found at the gateway",
                     matched, len(self._ledger))
