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
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import (
    ConnectionFailedError,
    IBNiceFuncsError,
    OrderRejectedError,
    RequestTimeoutError,
    RiskLimitError,
    UnknownSymbolError,
)
from ..symbols import Instrument, parse_symbol
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
from .results import (
    DONE_STATES,
    build_ib_order,
    effective_status,
    fills_result,
    is_settled,
    order_result,
    trade_result,
    waits_for_fill,
)
from .risk import PortfolioSnapshot, RiskLimits, check_order

if TYPE_CHECKING:  # pragma: no cover
    from ib_async import IB, Contract, Fill, Position, Trade

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
#: ib_async's "unset" float.
_UNSET = 1.7976931348623157e308
#: Size steps when IB's contract details carry none.
_DEFAULT_INCREMENT = {"STK": 1.0, "CASH": 1.0, "CRYPTO": 1e-8}
#: Security types the pattern-day-trader rule applies to.
_PDT_SEC_TYPES = frozenset({"STK", "OPT", "WAR"})

Sizing = Callable[["IB", "ContractSpec"], Awaitable[float]]


@dataclass(frozen=True)
class ContractSpec:
    """A qualified contract with the rules orders on it must follow."""

    contract: Any
    symbol: str
    min_tick: float
    size_increment: float
    min_size: float
    multiplier: float = 1.0


@dataclass
class _Sent:
    """What this Trader knows about an order it sent (keyed by client order id)."""

    client_order_id: str
    symbol: str
    trade: Any = None
    ib: Any = None
    last: dict[str, Any] | None = None
    sent_at: float = field(default_factory=time.monotonic)


def _finite(x: Any) -> float | None:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and abs(value) < _UNSET else None


def position_symbol(contract: Contract) -> str:
    """The canonical symbol of an IB contract (``AAPL``, ``EURUSD``, ``BTC-USD``)."""
    try:
        return parse_symbol(contract).symbol
    except (TypeError, ValueError):
        return str(getattr(contract, "localSymbol", "") or getattr(contract, "symbol", ""))


def multiplier_of(contract: Contract) -> float:
    """The contract multiplier (1 for stocks, FX and crypto)."""
    value = _finite(getattr(contract, "multiplier", "") or 1)
    return value if value and value > 0 else 1.0


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
        self._ledger: dict[str, _Sent] = {}
        self._ref_locks: dict[str, asyncio.Lock] = {}
        self._keyed_lock: asyncio.Lock | None = None
        self._specs: dict[Any, ContractSpec] = {}
        self._baseline = DailyBaseline()
        self.gateway.on_connected.append(self._on_connected)

    # -- thread side ---------------------------------------------------------

    def _deadline(self, timeout: float | None) -> float:
        """Monotonic deadline for a call; ``timeout`` None means the setting."""
        return time.monotonic() + self.client._timeout(timeout)

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
        if status in ("PendingSubmit", "Unknown"):
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
        for trade in list(got) + ib.openTrades():
            if effective_status(trade) in DONE_STATES:
                continue
            if account and trade.order.account and trade.order.account != account:
                continue
            seen.setdefault(id(trade), trade)
        return list(seen.values())

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

    # -- loop side: contracts -----------------------------------------------------

    async def _spec_async(self, ib: IB, instrument: Instrument, what: str) -> ContractSpec:
        """Qualified contract plus tick and size rules for ``instrument`` (cached)."""
        spec = self._specs.get(instrument.key)
        if spec is not None:
            return spec
        (contract,) = await self.gateway.qualify([instrument], what)
        if contract is None:
            raise UnknownSymbolError(
                f"{what}: IB has no instrument for {instrument.symbol!r}; check the symbol, "
                "or pass an ib_async Contract; nothing was sent"
            )
        spec = await self._spec_for_contract_async(ib, contract, instrument.symbol)
        self._specs[instrument.key] = spec
        return spec

    async def _spec_for_contract_async(self, ib: IB, contract: Contract, symbol: str) -> ContractSpec:
        """Tick and size rules of a contract known by conId (e.g. from a position)."""
        key = ("conId", contract.conId)
        spec = self._specs.get(key)
        if spec is not None:
            return spec
        from ib_async import Contract as IBContract

        ask = contract if contract.exchange else IBContract(conId=contract.conId)
        details = []
        try:
            details = await asyncio.wait_for(ib.reqContractDetailsAsync(ask), _ROUND_TRIP_S)
        except (asyncio.TimeoutError, TimeoutError):
            log.debug("no contract details for %s; using default size rules", symbol)
        except Exception as exc:  # noqa: BLE001 - details only refine the defaults
            log.debug("contract details for %s failed: %s", symbol, exc)
        sec_type = contract.secType
        increment = _DEFAULT_INCREMENT.get(sec_type, 1.0)
        min_tick, min_size, qualified = 0.0, 0.0, contract
        if details:
            d = details[0]
            qualified = d.contract if d.contract and d.contract.conId else contract
            min_tick = _finite(d.minTick) or 0.0
            inc = _finite(d.sizeIncrement)
            if inc and inc > 0:
                increment = inc
            min_size = _finite(d.minSize) or 0.0
        if qualified.secType == "STK" or (not qualified.exchange and sec_type == "STK"):
            qualified.exchange = "SMART"
        elif not qualified.exchange:
            qualified.exchange = {"CASH": "IDEALPRO", "CRYPTO": "PAXOS"}.get(sec_type, "SMART")
        spec = ContractSpec(
            contract=qualified,
            symbol=symbol,
            min_tick=min_tick,
            size_increment=increment,
            min_size=max(min_size, 0.0) or increment,
            multiplier=multiplier_of(qualified),
        )
        self._specs[key] = spec
        return spec

    # -- loop side: risk snapshot ---------------------------------------------------

    async def _account_values_async(self, ib: IB, account: str | None) -> list[Any]:
        """Account values: the live subscription, else a one-off account summary."""
        values = ib.accountValues(account or "")
        if account_number(values, "NetLiquidation", account) is None:
            summary = await asyncio.wait_for(ib.accountSummaryAsync(account or ""), _ROUND_TRIP_S)
            values = list(summary) + list(values)
        return values

    async def _snapshot_async(self, ib: IB, account: str) -> PortfolioSnapshot:
        """What the risk check needs, from IB's cached account and position state.

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
        rows = []
        for pos in ib.positions(account):
            if not pos.position:
                continue
            c = pos.contract
            mult = multiplier_of(c)
            item = marks.get(c.conId)
            price = _finite(item.marketPrice) if item is not None else None
            if not price or price <= 0:
                price = (_finite(pos.avgCost) or 0.0) / mult
            if c.secType == "CASH" and c.symbol == "USD":
                rows.append((position_symbol(c), pos.position, 1.0, 1.0))
                continue
            rate = rates.get((c.currency or "USD").upper(), 1.0)
            rows.append((position_symbol(c), pos.position * mult, price, rate))
        ib_daily = None
        for pnl in ib.pnl(account):
            ib_daily = _finite(pnl.dailyPnL)
        today = trading_day()
        daily = self._baseline.pnl(net_liq, today, ib_daily)
        # The pattern-day-trader rule covers securities (stocks, options), not FX or crypto.
        fill_rows = [
            (position_symbol(f.contract), f.execution.side, f.execution.shares, f.execution.time)
            for f in ib.fills()
            if f.contract.secType in _PDT_SEC_TYPES
            and (not f.execution.acctNumber or f.execution.acctNumber == account)
        ]
        used = day_trades_used(
            fill_rows, today, {"DayTradesRemaining": account_number(values, "DayTradesRemaining", account)}
        )
        return PortfolioSnapshot(
            positions_usd=signed_values_usd(rows),
            net_liquidation=net_liq,
            daily_pnl=daily,
            is_margin=True,
            day_trades_last_5_days=used,
        )

    # -- loop side: sending and waiting --------------------------------------------

    def _trade_by_ref(self, ib: IB, client_order_id: str) -> Trade | None:
        """The trade with this orderRef in ib_async's state (open ones first)."""
        found = [t for t in ib.trades() if t.order.orderRef == client_order_id]
        if not found:
            return None
        working = [t for t in found if effective_status(t) not in DONE_STATES]
        return (working or found)[-1]

    async def _existing_async(
        self, ib: IB, client_order_id: str, thorough: bool
    ) -> Trade | dict[str, Any] | None:
        """An order already placed with this client order id, if any is known.

        Looks at this Trader's ledger and ib_async's state first (no round
        trip); with ``thorough`` (an id the caller chose, or one sent on an
        earlier connection) also asks the gateway for every open order and
        for the executions, which covers a reconnect and a restarted process
        using the same client id.
        """
        record = self._ledger.get(client_order_id)
        if record is not None and record.ib is ib and record.trade is not None:
            return record.trade
        trade = self._trade_by_ref(ib, client_order_id)
        if trade is not None:
            return trade
        symbol = record.symbol if record is not None else None
        fills = [f for f in ib.fills() if f.execution.orderRef == client_order_id]
        if not fills and (thorough or record is not None):
            for open_trade in await self._open_trades_async(ib):
                if open_trade.order.orderRef == client_order_id:
                    return open_trade
            executions: list[Fill] = await asyncio.wait_for(ib.reqExecutionsAsync(), _ROUND_TRIP_S)
            fills = [f for f in executions if f.execution.orderRef == client_order_id]
        if fills:
            return fills_result(fills, client_order_id, symbol or position_symbol(fills[0].contract))
        if record is not None and record.last is not None and record.last.get("status") in DONE_STATES:
            return dict(record.last)
        if record is not None:
            log.warning(
                "order %s (%s) was sent before the connection dropped, but the gateway reports "
                "no open order and no execution for it: it never arrived; sending it now",
                client_order_id, record.symbol,
            )
        return None

    async def _wait_async(self, trade: Trade, for_fill: bool, deadline: float) -> bool:
        """Wait on the trade's events until it settles; False at the deadline."""
        if is_settled(trade, for_fill):
            return True
        loop = asyncio.get_running_loop()
        settled: asyncio.Future[bool] = loop.create_future()

        def check(*_: Any) -> None:
            if not settled.done() and is_settled(trade, for_fill):
                settled.set_result(True)

        trade.statusEvent += check
        try:
            await asyncio.wait_for(settled, max(0.0, deadline - time.monotonic()))
            return True
        except (asyncio.TimeoutError, TimeoutError):
            return False
        finally:
            trade.statusEvent -= check

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
    ) -> dict[str, Any]:
        """The order pipeline on the loop: guard, idempotency, size, risk, send, wait.

        Raises:
            LiveTradingDisabledError, RiskLimitError, NoPositionError,
            OrderSizeError, UnknownSymbolError: nothing was sent.
            ConnectionFailedError: the connection dropped (maybe after sending).
        """

        async def pipeline(ib: IB) -> dict[str, Any]:
            account = await self._trading_account_async()
            coid = request.client_order_id
            lock = self._ref_locks.setdefault(coid, asyncio.Lock())
            async with lock:
                existing = await self._existing_async(ib, coid, thorough)
                if isinstance(existing, dict):
                    return {**existing, "existing": True}
                if existing is not None:
                    trade = existing
                    fresh = False
                else:
                    spec = await self._spec_async(ib, instrument, what)
                    quantity = await sizing(ib, spec)
                    await self._check_risk_async(ib, account, spec, request.side, quantity, unit_usd)
                    trade = self._send(ib, spec, request, quantity, account)
                    fresh = True
            for_fill = waits_for_fill(request.order_type, request.tif)
            if wait:
                settled = await self._wait_async(trade, for_fill, deadline)
            else:
                settled = True
            result = trade_result(trade, instrument.symbol)
            if not fresh:
                result["existing"] = True
            if not wait and result["status"] == "PendingSubmit":
                result["success"] = True  # sent; the caller chose not to wait
            elif not settled:
                result["error"] = result["error"] or self._late_note(result, for_fill, deadline)
                if result["success"]:
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
                    success=False,
                    client_order_id=request.client_order_id,
                    status="Unknown",
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
    def _late_note(result: dict[str, Any], for_fill: bool, deadline: float) -> str:
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

    async def _check_risk_async(
        self, ib: IB, account: str, spec: ContractSpec, side: str, quantity: float,
        unit_usd: float | None,
    ) -> None:
        """Raise RiskLimitError when the order would breach a limit (nothing is sent)."""
        snapshot = await self._snapshot_async(ib, account)
        price = unit_usd
        if price is None or price <= 0:
            price = self._mark_usd(ib, spec, account)
        value = abs(quantity) * price * spec.multiplier
        # Agents may close any position intraday, so every opening order of a
        # security counts as a potential day trade for the PDT guard.
        day_trade = self.limits.pdt_guard and spec.contract.secType in _PDT_SEC_TYPES
        breach = check_order(self.limits, snapshot, spec.symbol, side, value, opens_day_trade=day_trade)
        if breach is not None:
            log.debug("risk breach %s for %s", breach.limit, spec.symbol)
            raise RiskLimitError(breach.message, breach)

    def _mark_usd(self, ib: IB, spec: ContractSpec, account: str) -> float:
        """IB's mark for a held contract in USD (0.0 when there is none)."""
        for item in ib.portfolio(account):
            if item.contract.conId == spec.contract.conId:
                return _finite(item.marketPrice) or 0.0
        return 0.0

    def _send(
        self, ib: IB, spec: ContractSpec, request: OrderRequest, quantity: float, account: str
    ) -> Trade:
        order = build_ib_order(request, quantity, account=account, min_tick=spec.min_tick)
        trade = ib.placeOrder(spec.contract, order)
        self._remember(request.client_order_id, spec.symbol, trade, ib, None)
        log.info(
            "sent %s %s %g %s (client order id %s, order id %s)",
            request.order_type, request.side, quantity, spec.symbol,
            request.client_order_id, trade.order.orderId,
        )
        return trade

    def _remember(
        self, coid: str, symbol: str, trade: Trade | None, ib: IB, result: dict[str, Any] | None
    ) -> None:
        record = self._ledger.get(coid)
        if record is None:
            record = self._ledger[coid] = _Sent(coid, symbol)
        if trade is not None:
            record.trade, record.ib = trade, ib
        if result is not None:
            record.last = dict(result)

    # -- reconnect hook --------------------------------------------------------------

    async def _on_connected(self, ib: IB) -> None:
        """After every (re)connect: re-attach the orders this Trader sent to the new session.

        ib_async loads this client's open and completed orders and the day's
        executions while connecting, so the ledger can be reconciled without a
        round trip; orders still unknown are checked again on the next use of
        their client order id.
        """
        if not self._ledger:
            return
        matched = 0
        for record in self._ledger.values():
            if record.ib is ib:
                continue
            trade = self._trade_by_ref(ib, record.client_order_id)
            if trade is not None:
                record.trade, record.ib = trade, ib
                record.last = trade_result(trade, record.symbol)
                matched += 1
        log.info("reconnected: %d of %d known orders found at the gateway", matched, len(self._ledger))
