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

Positions, account values, fill tracking and the risk snapshot are
:mod:`.tws_account`; closing (cancel all, close, flatten) is
:mod:`.tws_closing`. :class:`TwsVenue` meets :class:`~.base.Venue`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...errors import ConnectionFailedError, RiskLimitError
from ...fleet.state import WorkingOrder
from ...model import (
    ORDER_SPECS,
    CancelAllResult,
    FlattenReport,
    OpenOrderRow,
    OrderRequest,
    OrderResult,
)
from ..contracts import ContractSpec, finite, position_symbol
from ..results import (
    DONE_STATES,
    UNKNOWN,
    as_unknown,
    carry_result,
    check_prices_on_grid,
    effective_status,
    is_settled,
    on_the_grid,
    order_result,
    order_summary,
    trade_result,
    waits_for_fill,
)
from ..risk import PDT_SEC_TYPES, adds_risk, check_order
from .tws_account import TwsAccount
from .tws_closing import TwsClosing

if TYPE_CHECKING:  # pragma: no cover
    from ib_async import IB, Order, Trade

    from ...symbols import Instrument
    from ..context import TradingContext
    from ..sizing import PlannedOrder

__all__ = ["TwsVenue", "build_ib_order"]

log = logging.getLogger("ib_nice_funcs")



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
        #: Positions, account values, fill tracking and the risk snapshot.
        self.account = TwsAccount(ctx)
        #: Cancel all, close, chunked close, flatten.
        self.closing = TwsClosing(self)
        self.gateway.on_connected.append(self._on_connected)

    # -- the Venue protocol's reads and getting out ----------------------------------------

    async def positions(self, deadline: float, instrument: Instrument | None = None, *,
                        priced: bool = True) -> list[dict[str, Any]]:
        """Non-zero positions as nice_funcs dicts (see :meth:`TwsAccount.positions`)."""
        return await self.account.positions(deadline, instrument, priced=priced)

    async def account_number(self, tags: tuple[str, ...], deadline: float) -> float | None:
        """The first of ``tags`` IB reports for the account (None: none of them)."""
        return await self.account.account_number(tags, deadline)

    async def cancel_all(self, deadline: float) -> CancelAllResult:
        """Every open order of the account, any client's (IB's global cancel, confirmed)."""
        return await self.closing.cancel_all(deadline)

    async def close(self, instrument: Instrument, deadline: float, *, cancel: bool,
                    what: str) -> OrderResult:
        """Close the position in ``instrument`` (``cancel``: its orders first)."""
        account = await self.ctx.trading_account()
        return await self.closing.close(instrument, account, deadline, cancel=cancel, what=what)

    async def flatten(self, deadline: float) -> FlattenReport:
        """Cancel every order and close every position of the account."""
        account = await self.ctx.trading_account()
        return await self.closing.flatten(account, deadline)

    # -- orders: open, cancel, what the Client Portal venue asks --------------------------

    async def open_orders(self, deadline: float) -> list[OpenOrderRow]:
        """Every open order on the account as summary rows, sorted by order id."""

        async def run(ib: IB) -> list[OpenOrderRow]:
            trades = await self.account.open_trades(ib)
            rows = [order_summary(t, position_symbol(t.contract)) for t in trades]
            return sorted(rows, key=lambda r: (r["order_id"] or 0, r["perm_id"] or 0))

        return await self.gateway.request(run, "open orders")

    async def cancel(self, order_id: int | str, deadline: float) -> OrderResult:
        """Cancel one order of this API client by order id (int) or client order id (str)."""

        def match(trade: Trade) -> bool:
            if isinstance(order_id, str):
                return trade.order.orderRef == order_id.strip()
            return trade.order.orderId == int(order_id)

        async def run(ib: IB) -> OrderResult:
            my_id = ib.client.clientId
            candidates = [t for t in ib.trades() if match(t) and t.order.clientId == my_id]
            working = [t for t in candidates if t.orderStatus.status not in DONE_STATES]
            if not working:
                found = [t for t in await self.account.open_trades(ib) if match(t)]
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
                return order_result(success=False,
                                    order_id=None if isinstance(order_id, str) else order_id,
                                    client_order_id=order_id if isinstance(order_id, str) else None,
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

    # ---------------------------------

    def last_result(self, client_order_id: str) -> tuple[str, OrderResult | None]:
        """``("none" | "acked" | "unacked", last result)`` for an id sent over TWS."""
        ledger = self.ctx.ledger
        if client_order_id not in ledger:
            return "none", None
        record = ledger[client_order_id]
        if record.trade is None:
            return ("acked" if record.last else "none"), record.last
        last = record.last or trade_result(record.trade, record.symbol)
        acked = effective_status(record.trade) != "PendingSubmit"
        return ("acked" if acked else "unacked"), last.copy()

    def client_order_id_of(self, order_id: int) -> str | None:
        """The client order id of an order this process sent over TWS, by IB order id."""
        for record in self.ctx.ledger:
            trade = record.trade
            if trade is not None and trade.order.orderId == order_id:
                return record.client_order_id
        return None

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
            held = sum(float(p.position) for p in await self.account.ib_positions(ib)
                       if p.contract.conId == spec.contract.conId)
        return order.sizer.size(spec, held)

    async def place(
        self,
        order: PlannedOrder,
        deadline: float,
        *,
        ack_deadline: float | None = None,
        placed_elsewhere: OrderResult | None = None,
    ) -> OrderResult:
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

        async def prepare(ib: IB, account: str, coid: str) -> tuple[Trade, bool] | OrderResult:
            existing = await ledger.existing(
                ib, coid, order.explicit_id or placed_elsewhere is not None,
                lambda: self.account.open_trades(ib), lambda: self.account.completed_trades(ib))
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

        async def pipeline(ib: IB) -> OrderResult:
            account = await self.ctx.trading_account()
            self.account.follow(ib)
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
                note = result["error"] or _late_note(result, for_fill)
                result["error"] = note
                if result["status"] == "PendingSubmit":
                    as_unknown(result, note)  # may be working or filled at IB
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
                carry_result(exc, self.unknown(
                    order, f"{exc}. The order was sent before the drop"))
            raise

    @staticmethod
    def unknown(order: PlannedOrder, cause: str) -> OrderResult:
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
        snapshot = await self.account.snapshot(ib, account)
        value = self._order_value_usd(ib, spec, account, quantity, unit_usd)
        return adds_risk(snapshot, spec.symbol, side, value)

    async def _check_risk(
        self, ib: IB, account: str, spec: ContractSpec, side: str, quantity: float,
        unit_usd: float | None, working: Sequence[WorkingOrder] = (),
    ) -> None:
        """Raise RiskLimitError when the order would breach a limit (nothing is sent)."""
        snapshot = await self.account.snapshot(ib, account, working)
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
        self.account.follow(ib)
        ledger = self.ctx.ledger
        if len(ledger):
            matched = ledger.reattach(ib)
            log.info("reconnected: %d of %d known orders found at the gateway",
                     matched, len(ledger))


def _late_note(result: OrderResult, for_fill: bool) -> str:
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
