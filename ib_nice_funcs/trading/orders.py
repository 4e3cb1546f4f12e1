"""Trader: orders, positions and account helpers of one Client.

Every order goes through the same pipeline, in this order, and nothing is
sent unless all of it passes:

1. argument validation (ValueError / TypeError naming the argument);
2. the live-account guard (LiveTradingDisabledError unless ``allow_live``);
3. idempotency: the client order id (IB's ``orderRef``) is looked up in this
   Trader's ledger, in ib_async's state and, for ids the caller chose or ids
   sent before a reconnect, in the gateway's open orders and executions; a
   known id returns the existing order (``"existing": True``) instead of
   sending a second one;
4. the risk check (:func:`~ib_nice_funcs.trading.risk.check_order`) against
   a snapshot of IB's positions and account values;
5. send, then (``wait=True``) wait on ib_async's trade events until the order
   fills (MKT, IOC, FOK) or IB accepts it (resting orders), or the timeout.

With ``order_failover`` on, an order TWS / IB Gateway cannot take goes
through the same steps against the Client Portal instead (see
:mod:`ib_nice_funcs.trading.failover`), with the same client order id.
"""

from __future__ import annotations

import logging
import numbers
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import ConnectionFailedError, NoPositionError, OrderSizeError, RequestTimeoutError
from ..symbols import Instrument, parse_symbol
from ..trade_journal.recorder import journaled
from .closing import ClosingMixin
from .contracts import ContractSpec, position_symbol
from .failover import Sizer
from .positions import PositionsMixin
from .results import (
    DONE_STATES,
    UNKNOWN,
    is_multiple,
    order_result,
    order_summary,
    round_quantity,
    trade_result,
)
from .validation import (
    MAX_QUANTITY,
    OrderRequest,
    check_usd_at_price,
    quantity_for_usd,
    validate_order,
    validate_percentage,
    validate_usd_amount,
)

if TYPE_CHECKING:  # pragma: no cover
    from ib_async import IB, Trade

    from ..client import Client

__all__ = ["Trader", "NoPositionError", "OrderSizeError"]

log = logging.getLogger("ib_nice_funcs")


class Trader(ClosingMixin, PositionsMixin):
    """Orders, positions, account values and kill switches for one :class:`Client`.

    Get it as ``client.trading`` (one per Client). Orders go through the IB
    gateway (never yfinance); with ``order_failover`` on, through the Client
    Portal while TWS / IB Gateway is down, with the same client order id (see
    :mod:`ib_nice_funcs.trading.failover`). Results from the portal carry
    ``"source": "portal"``.

    Threading contract: every public method may be called from any thread
    (a script, a Jupyter cell, a web handler), concurrently, but not from the
    package's event-loop thread. Each blocks its caller for at most its
    ``timeout`` (default: the ``timeout`` setting; ``emergency_stop`` three
    times that) while the work runs on the loop thread; the Trader's own
    state (the client-order-id ledger, contract rules, the daily P&L
    baseline) lives on that thread only.

    Errors: ValueError / TypeError for bad arguments (nothing sent);
    LiveTradingDisabledError, RiskLimitError, NoPositionError, OrderSizeError
    when an order is refused before sending; OrderRejectedError when IB
    rejects or cancels it; ConnectionFailedError / RequestTimeoutError when
    the gateway fails. Errors raised after an order was sent carry the result
    dict as ``exc.result``.
    """

    def __init__(self, client: Client) -> None:
        super().__init__(client)

    def __repr__(self) -> str:
        return f"Trader({self.client!r})"

    # -- the shared path ---------------------------------------------------------------

    def _tws_sizing(
        self, instrument: Instrument, sizer: Sizer
    ) -> Callable[[IB, ContractSpec], Awaitable[float]]:
        """The TWS pipeline's sizing step for ``sizer`` (asks IB for the position if needed)."""

        async def sizing(ib: IB, spec: ContractSpec) -> float:
            held = 0.0
            if sizer.needs_held:
                held = sum(
                    float(p.position) for p in await self._positions_async(ib)
                    if p.contract.conId == spec.contract.conId
                )
            return sizer.size(spec, held)

        return sizing

    @journaled
    def _submit(
        self,
        instrument: Instrument,
        request: OrderRequest,
        sizer: Sizer,
        unit_usd: float | None,
        *,
        explicit_id: bool,
        wait: bool,
        deadline: float,
        what: str,
        tws_down: ConnectionFailedError | None = None,
    ) -> dict[str, Any]:
        """Run the order pipeline and turn its outcome into a result or error.

        ``tws_down``: TWS was found unreachable before the pipeline (order
        failover on): the order goes to the Client Portal at once.
        """
        if not self._failover.active:
            return self._submit_tws(instrument, request, sizer, unit_usd, explicit_id=explicit_id,
                                    wait=wait, deadline=deadline, what=what)
        failover = self._failover
        coid = request.client_order_id

        def portal(cause: BaseException) -> dict[str, Any]:
            return failover.place(instrument, request, sizer, unit_usd, explicit_id=explicit_id,
                                  deadline=deadline, what=what, cause=cause)

        with failover.hold(coid, deadline):
            if tws_down is not None:
                return self._raise_for(portal(tws_down), what)
            elsewhere = failover.resolve(coid, deadline)
            try:
                result = self._run(
                    lambda: self._place_async(
                        instrument, request, self._tws_sizing(instrument, sizer), unit_usd,
                        thorough=explicit_id, wait=wait, deadline=deadline, what=what,
                        ack_deadline=failover.ack_deadline(deadline), placed_elsewhere=elsewhere,
                    ),
                    deadline,
                    what,
                )
            except (RequestTimeoutError, ConnectionFailedError) as exc:
                # Before the send the order fails over; after it, the portal is only
                # asked whether the order arrived (the failover reads the ledger).
                result = portal(exc)
            else:
                if result.get("ib_status") == "PendingSubmit" and not result.get("success"):
                    result = portal(RequestTimeoutError(
                        f"{what}: IB did not acknowledge the order in time"))
                elif result.get("source") != "portal":
                    failover.note_up()
        return self._raise_for(result, what)

    def _submit_tws(
        self,
        instrument: Instrument,
        request: OrderRequest,
        sizer: Sizer,
        unit_usd: float | None,
        *,
        explicit_id: bool,
        wait: bool,
        deadline: float,
        what: str,
    ) -> dict[str, Any]:
        """The TWS-only path (order failover off): run the pipeline on the loop."""
        try:
            result = self._run(
                lambda: self._place_async(
                    instrument, request, self._tws_sizing(instrument, sizer), unit_usd,
                    thorough=explicit_id, wait=wait, deadline=deadline, what=what,
                ),
                deadline,
                what,
            )
        except (RequestTimeoutError, ConnectionFailedError) as exc:
            # A drop is reported on the loop (the ledger then says whether it was sent);
            # a timeout here cuts the pipeline off at any point, possibly just after the
            # send, so the order's fate is unknown either way.
            coid = request.client_order_id
            if not hasattr(exc, "result") and (
                    isinstance(exc, RequestTimeoutError) or coid in self._ledger):
                exc.result = order_result(  # type: ignore[attr-defined]
                    success=None, client_order_id=coid, status=UNKNOWN,
                    error=(f"{exc}. Call again with client_order_id={coid!r} to get the "
                           "order's state (it will not be sent twice)"),
                    symbol=instrument.symbol, side=request.side, order_type=request.order_type,
                )
            raise
        return self._raise_for(result, what)

    def _price(self, instrument: Instrument, symbol: Any, deadline: float) -> float:
        """Current price for sizing (any configured source; orders still go only to IB)."""
        return self.client.price(symbol, timeout=max(0.1, deadline - time.monotonic()))

    def _buy_usd(
        self,
        symbol: Any,
        usd_amount: float,
        order_type: str,
        limit_price: float | None,
        tif: str,
        client_order_id: str | None,
        wait: bool,
        timeout: float | None,
        what: str,
        side: str = "BUY",
    ) -> dict[str, Any]:
        _check_wait(wait)
        usd = validate_usd_amount(usd_amount)
        request = validate_order(
            symbol, side, 1.0, order_type, limit_price=limit_price, tif=tif,
            client_order_id=client_order_id,
        )
        if request.limit_price is not None:
            check_usd_at_price(usd, request.limit_price)
        instrument = parse_symbol(symbol)
        deadline = self._deadline(timeout)
        route = self._require_route(deadline)
        price = request.limit_price if request.limit_price is not None else self._price(
            instrument, symbol, deadline)
        unit_usd = self._usd_per_unit(instrument, price, deadline)

        def size(spec: ContractSpec, held: float) -> float:
            qty = quantity_for_usd(
                usd, unit_usd * spec.multiplier, spec.size_increment, spec.min_size)
            if qty <= 0:
                raise OrderSizeError(
                    f"{what}: ${usd:,.2f} is less than the smallest size of {spec.symbol} "
                    f"({spec.min_size:g} at {price:,.6g}); nothing was sent. Raise usd_amount"
                )
            if qty > MAX_QUANTITY:
                raise OrderSizeError(
                    f"{what}: ${usd:,.2f} at {price:,.6g} is {qty:.3g} {spec.symbol}, more than "
                    f"the {MAX_QUANTITY:g} units allowed in one order; nothing was sent"
                )
            return qty

        return self._submit(instrument, request, Sizer(size), unit_usd,
                            explicit_id=client_order_id is not None, wait=wait,
                            deadline=deadline, what=what, tws_down=_down(route))

    def _sell_pct(
        self,
        symbol: Any,
        percentage: float,
        order_type: str,
        limit_price: float | None,
        tif: str,
        client_order_id: str | None,
        wait: bool,
        timeout: float | None,
        what: str,
    ) -> dict[str, Any]:
        _check_wait(wait)
        pct = validate_percentage(percentage)
        request = validate_order(
            symbol, "SELL", 1.0, order_type, limit_price=limit_price, tif=tif,
            client_order_id=client_order_id,
        )
        instrument = parse_symbol(symbol)
        deadline = self._deadline(timeout)
        route = self._require_route(deadline)

        def size(spec: ContractSpec, held: float) -> float:
            if held <= 0:
                raise NoPositionError(
                    f"{what}: the account holds no long position in {spec.symbol}; nothing was sent"
                )
            qty = held if pct >= 100 else round_quantity(held * pct / 100.0, spec.size_increment)
            if qty <= 0 or qty < spec.min_size:
                raise OrderSizeError(
                    f"{what}: {pct:g}% of {held:g} {spec.symbol} is below the smallest size "
                    f"({spec.min_size:g}); nothing was sent"
                )
            return qty

        # A sell of a held position only reduces it, which the risk check always
        # allows; the limit price (or IB's mark) is enough to value it.
        return self._submit(instrument, request, Sizer(size, needs_held=True),
                            request.limit_price, explicit_id=client_order_id is not None,
                            wait=wait, deadline=deadline, what=what, tws_down=_down(route))

    # -- nice_funcs order helpers ------------------------------------------------------

    def market_buy(
        self,
        symbol: Any,
        usd_amount: float,
        *,
        client_order_id: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Buy about ``usd_amount`` dollars of ``symbol`` at market.

        The quantity is ``usd_amount / price`` rounded down to the contract's
        size increment (whole shares for stocks, fractions for crypto, units
        of the base currency for FX). Blocks up to ``timeout`` seconds
        (default: the ``timeout`` setting) until the order fills (or is
        working at the timeout: then ``timed_out`` is True and a WARNING is
        logged).

        Returns:
            The order result dict (``success``, ``order_id``,
            ``client_order_id``, ``status``, ``filled_qty``, ``avg_price``,
            ``error``...).

        Raises:
            ValueError, TypeError: bad arguments (nothing sent).
            LiveTradingDisabledError, RiskLimitError, OrderSizeError: refused
                before sending.
            OrderRejectedError: IB rejected it (``code``, ``exc.result``).
            ConnectionFailedError, RequestTimeoutError: the gateway failed.
        """
        return self._buy_usd(symbol, usd_amount, "MKT", None, _market_tif(symbol), client_order_id,
                             wait, timeout, f"market_buy({_label(symbol)}, {usd_amount!r})")

    def market_sell_usd(
        self,
        symbol: Any,
        usd_amount: float,
        *,
        client_order_id: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Sell about ``usd_amount`` dollars of ``symbol`` at market, held or not.

        What a perp exchange's sell does: it reduces a long, and past zero it
        opens (or adds to) a short, which the risk limits check like a buy.
        Sized, blocks and raises like :meth:`market_buy`.
        """
        return self._buy_usd(symbol, usd_amount, "MKT", None, _market_tif(symbol), client_order_id,
                             wait, timeout, f"market_sell_usd({_label(symbol)}, {usd_amount!r})",
                             side="SELL")

    def limit_buy(
        self,
        symbol: Any,
        usd_amount: float,
        limit_price: float,
        *,
        tif: str = "DAY",
        client_order_id: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Buy ``usd_amount`` dollars' worth at ``limit_price`` or better (quantity at the limit).

        Blocks up to ``timeout`` seconds until IB accepts (or fills) the order.
        Raises like :meth:`market_buy`.
        """
        what = f"limit_buy({_label(symbol)}, {usd_amount!r}, {limit_price!r})"
        return self._buy_usd(symbol, usd_amount, "LMT", limit_price, tif, client_order_id, wait,
                             timeout, what)

    def market_sell(
        self,
        symbol: Any,
        percentage: float = 100,
        *,
        client_order_id: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Sell ``percentage`` (0-100] of the long position in ``symbol`` at market.

        The quantity is rounded down to the size increment; 100 sells it all.
        Blocks up to ``timeout`` seconds until it fills.

        Raises:
            NoPositionError: no long position (nothing sent).
            Otherwise like :meth:`market_buy`.
        """
        return self._sell_pct(symbol, percentage, "MKT", None, _market_tif(symbol), client_order_id,
                              wait, timeout, f"market_sell({_label(symbol)}, {percentage!r})")

    def limit_sell(
        self,
        symbol: Any,
        percentage: float,
        limit_price: float,
        *,
        tif: str = "DAY",
        client_order_id: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Sell ``percentage`` of the long position at ``limit_price`` or better.

        Blocks up to ``timeout`` seconds until IB accepts (or fills) it.
        Raises like :meth:`market_sell`.
        """
        what = f"limit_sell({_label(symbol)}, {percentage!r}, {limit_price!r})"
        return self._sell_pct(symbol, percentage, "LMT", limit_price, tif, client_order_id, wait,
                              timeout, what)

    def place_order(
        self,
        symbol: Any,
        side: str,
        quantity: float,
        order_type: str = "MKT",
        limit_price: float | None = None,
        stop_price: float | None = None,
        trail_percent: float | None = None,
        trail_amount: float | None = None,
        tif: str = "DAY",
        client_order_id: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Place any supported order: MKT, LMT, STP, TRAIL, MOC, LOC, MIDPRICE.

        Args:
            symbol: Symbol text or an ib_async Contract.
            side: ``BUY`` or ``SELL``.
            quantity: Units, a multiple of the contract's size increment.
            order_type: MKT, LMT, STP, TRAIL, MOC, LOC or MIDPRICE.
            limit_price: LMT and LOC (required); MIDPRICE (optional cap).
                Put on the tick grid in your favour.
            stop_price: STP (required); TRAIL (optional initial stop).
            trail_percent: TRAIL distance in percent (or ``trail_amount``).
            trail_amount: TRAIL distance in price units.
            tif: DAY, GTC, IOC, OPG or FOK.
            client_order_id: Idempotency key (IB ``orderRef``); placing again
                with a known id returns that order instead of a new one.
            wait: Wait for the fill (MKT, IOC, FOK) or for IB to accept the
                order (others); False returns right after sending.
            timeout: Seconds to block (default: the ``timeout`` setting).

        Returns:
            The order result dict.

        Raises:
            Like :meth:`market_buy`; ValueError also when ``quantity`` is not
            a multiple of the size increment (checked before sending).
        """
        _check_wait(wait)
        request = validate_order(
            symbol, side, quantity, order_type, limit_price, stop_price, trail_percent,
            trail_amount, tif, client_order_id,
        )
        instrument = parse_symbol(symbol)
        deadline = self._deadline(timeout)
        route = self._require_route(deadline)
        reference = request.limit_price or request.stop_price
        if reference is None or request.order_type == "TRAIL":
            reference = self._price(instrument, symbol, deadline)
        unit_usd = self._usd_per_unit(instrument, reference, deadline)
        what = f"place_order({_label(symbol)}, {request.side}, {quantity!r}, {request.order_type})"

        def size(spec: ContractSpec, held: float) -> float:
            qty = request.quantity
            if not is_multiple(qty, spec.size_increment) or qty < spec.min_size:
                raise ValueError(
                    f"quantity={quantity!r} is not allowed for {spec.symbol}: it must be a "
                    f"multiple of {spec.size_increment:g} and at least {spec.min_size:g}"
                )
            return qty

        return self._submit(instrument, request, Sizer(size), unit_usd,
                            explicit_id=client_order_id is not None, wait=wait,
                            deadline=deadline, what=what, tws_down=_down(route))

    # -- order management --------------------------------------------------------------

    def cancel_order(self, order_id: int | str, *, timeout: float | None = None) -> dict[str, Any]:
        """Cancel one order by IB order id (int) or client order id (str).

        Only this API client's orders can be cancelled one by one (IB's
        rule); use :meth:`cancel_all` for the others. Blocks up to ``timeout``
        seconds until IB confirms. With ``order_failover`` on and TWS down,
        the Client Portal cancels it: by client order id, or by an order id
        the portal gave (a TWS order id is mapped through this Trader's
        records when it can be).

        Returns:
            A result dict: ``success`` True when the order ended cancelled;
            False (with ``error``) when it was unknown, already done, filled
            first, or placed by another client.

        Raises:
            ValueError, TypeError: a malformed id.
            LiveTradingDisabledError: a live account without allow_live.
            ConnectionFailedError, RequestTimeoutError: the gateway failed.
        """
        if isinstance(order_id, bool) or not isinstance(order_id, (numbers.Integral, str)):
            raise TypeError(
                f"order_id must be an int order id or a str client order id, got {order_id!r}")
        if isinstance(order_id, str) and not order_id.strip():
            raise ValueError("order_id is empty; pass an order id or a client order id")
        if not isinstance(order_id, str) and int(order_id) <= 0:
            raise ValueError(f"order_id must be a positive int, got {order_id!r}")
        deadline = self._deadline(timeout)
        route = self._require_route(deadline)
        if isinstance(route, ConnectionFailedError):
            return self._failover.cancel(order_id, route, deadline)
        what = f"cancel_order({order_id!r})"

        def match(trade: Trade) -> bool:
            if isinstance(order_id, str):
                return trade.order.orderRef == order_id.strip()
            return trade.order.orderId == int(order_id)

        async def run(ib: IB) -> dict[str, Any]:
            my_id = ib.client.clientId
            candidates = [t for t in ib.trades() if match(t) and t.order.clientId == my_id]
            working = [t for t in candidates if t.orderStatus.status not in DONE_STATES]
            if not working:
                found = [t for t in await self._open_trades_async(ib) if match(t)]
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
            await self._wait_async(trade, True, deadline)
            result = trade_result(trade, position_symbol(trade.contract))
            status = result["status"]
            if status in ("Cancelled", "ApiCancelled"):
                return {**result, "success": True, "error": None, "code": None}
            note = "it filled before the cancel arrived" if status == "Filled" else (
                f"IB has not confirmed the cancel yet (status {status})")
            return {**result, "success": False, "error": result["error"] or note}

        try:
            return self._run(lambda: self.gateway.request(run, what), deadline, what)
        except ConnectionFailedError as exc:
            # A cancel is safe to repeat: one the gateway got first is reported as done.
            return self._failover.cancel(order_id, exc, deadline)

    def get_open_orders(self, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """Every open order on the account, whichever client placed it.

        Blocks up to ``timeout`` seconds. Never blocked by the live guard.
        With ``order_failover`` on and TWS down, the Client Portal's working
        orders (``source`` "portal"; ``perm_id`` and ``client_id`` None).

        Returns:
            Dicts with ``order_id``, ``perm_id``, ``client_id``,
            ``client_order_id``, ``symbol``, ``side``, ``quantity``,
            ``order_type``, ``limit_price``, ``stop_price``, ``trail_percent``,
            ``tif``, ``status``, ``filled_qty``, ``remaining``, ``account``.

        Raises:
            ConnectionFailedError, RequestTimeoutError: the gateway failed.
        """
        deadline = self._deadline(timeout)

        async def run(ib: IB) -> list[dict[str, Any]]:
            trades = await self._open_trades_async(ib)
            rows = [order_summary(t, position_symbol(t.contract)) for t in trades]
            return sorted(rows, key=lambda r: (r["order_id"] or 0, r["perm_id"] or 0))

        try:
            return self._run(
                lambda: self.gateway.request(run, "open orders"), deadline, "open orders")
        except ConnectionFailedError as exc:
            return self._failover.open_orders(exc, deadline)


def _down(route: str | ConnectionFailedError) -> ConnectionFailedError | None:
    """The TWS failure :meth:`TraderCore._require_route` returned, or None when TWS is up."""
    return route if isinstance(route, ConnectionFailedError) else None


def _check_wait(wait: object) -> None:
    if not isinstance(wait, bool):
        raise TypeError(f"wait must be True or False, got {wait!r}")


def _label(symbol: Any) -> str:
    return symbol if isinstance(symbol, str) else getattr(symbol, "symbol", repr(symbol))


def _market_tif(symbol: Any) -> str:
    """DAY for market orders, except crypto: IB's PAXOS takes market orders as IOC."""
    try:
        return "IOC" if parse_symbol(symbol).asset_class == "crypto" else "DAY"
    except (TypeError, ValueError):
        return "DAY"  # the validation that follows names the problem

