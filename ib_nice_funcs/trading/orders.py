"""OrderDesk: the order helpers (market/limit buys and sells, any order, cancel, open orders).

Each helper does three things and then asks the router:

1. validate its arguments (ValueError / TypeError naming the argument;
   which prices each order type needs is its row in
   :data:`ib_nice_funcs.model.ORDER_SPECS`), before anything is sent;
2. price the order once (the limit, else the current quote, in USD);
3. build one :class:`~.sizing.PlannedOrder` and hand it to
   :meth:`OrderRouter.place <ib_nice_funcs.trading.router.OrderRouter.place>`,
   which picks the venue (:mod:`.venues.tws`, or the Client Portal on
   failover) where the live-account guard, idempotency, sizing, the risk
   check and the send happen.

Every helper is a coroutine ``*_async`` for the loop thread plus a blocking
one-liner over it.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator
from typing import Any

from ..errors import ConnectionFailedError
from ..model import OpenOrderRow, OrderRequest, OrderResult
from ..symbols import Instrument, parse_symbol, symbol_label
from .desk import Desk, blocking
from .sizing import PlannedOrder, Sizer, percent_sizer, quantity_sizer, usd_sizer
from .validation import (
    check_usd_at_price,
    validate_order,
    validate_percentage,
    validate_usd_amount,
)

__all__ = ["OrderDesk"]


class OrderDesk(Desk):
    """Placing, cancelling and listing orders (see the module docstring)."""

    # -- the shared path -----------------------------------------------------------------

    @contextlib.contextmanager
    def _journaled(self, request: OrderRequest, instrument: Instrument) -> Iterator[None]:
        """Journal a refusal before the router (the live-account guard, an unreachable
        gateway, no price) like one inside it; the error goes on unchanged."""
        try:
            yield
        except Exception as exc:
            self.ctx.journal.refused(request, instrument.symbol, exc)
            raise

    async def _route(self, request: OrderRequest, instrument: Instrument,
                     deadline: float) -> ConnectionFailedError | None:
        """None when TWS takes orders; the TWS failure when they must fail over."""
        with self._journaled(request, instrument):
            route = await self.router.route(deadline)
        return route if isinstance(route, ConnectionFailedError) else None

    async def _value(self, symbol: Any, request: OrderRequest, instrument: Instrument,
                     deadline: float, reference: float | None) -> tuple[float, float]:
        """``(price, USD per unit)``: at ``reference``, else at the current quote."""
        with self._journaled(request, instrument):
            price = reference if reference is not None else \
                await self.ctx.price(symbol, deadline)
            return price, await self.ctx.usd_per_unit(instrument, price, deadline)

    async def _buy_usd(self, symbol: Any, usd_amount: float, order_type: str,
                       limit_price: float | None, tif: str, client_order_id: str | None,
                       wait: bool, timeout: float | None, what: str,
                       side: str = "BUY") -> OrderResult:
        _check_wait(wait)
        usd = validate_usd_amount(usd_amount)
        request = validate_order(symbol, side, 1.0, order_type, limit_price=limit_price, tif=tif,
                                 client_order_id=client_order_id)
        if request.limit_price is not None:
            check_usd_at_price(usd, request.limit_price)
        instrument = parse_symbol(symbol)
        deadline = self.ctx.deadline(timeout)
        tws_down = await self._route(request, instrument, deadline)
        price, unit_usd = await self._value(symbol, request, instrument, deadline,
                                            request.limit_price)
        order = PlannedOrder(instrument, request, usd_sizer(usd, unit_usd, price, what), unit_usd,
                             explicit_id=client_order_id is not None, wait=wait, what=what)
        return await self.router.place(order, deadline, tws_down)

    async def _sell_pct(self, symbol: Any, percentage: float, order_type: str,
                        limit_price: float | None, tif: str, client_order_id: str | None,
                        wait: bool, timeout: float | None, what: str) -> OrderResult:
        _check_wait(wait)
        pct = validate_percentage(percentage)
        request = validate_order(symbol, "SELL", 1.0, order_type, limit_price=limit_price,
                                 tif=tif, client_order_id=client_order_id)
        instrument = parse_symbol(symbol)
        deadline = self.ctx.deadline(timeout)
        tws_down = await self._route(request, instrument, deadline)
        # A sell of a held position only reduces it, which the risk check always
        # allows; the limit price (or IB's mark) is enough to value it.
        order = PlannedOrder(instrument, request, percent_sizer(pct, what), request.limit_price,
                             explicit_id=client_order_id is not None, wait=wait, what=what)
        return await self.router.place(order, deadline, tws_down)

    # -- nice_funcs order helpers (coroutines) ---------------------------------------------

    async def market_buy_async(self, symbol: Any, usd_amount: float, *,
                               client_order_id: str | None = None, wait: bool = True,
                               timeout: float | None = None) -> OrderResult:
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
        return await self._buy_usd(symbol, usd_amount, "MKT", None, _market_tif(symbol),
                                   client_order_id, wait, timeout,
                                   f"market_buy({symbol_label(symbol)}, {usd_amount!r})")

    async def market_sell_usd_async(self, symbol: Any, usd_amount: float, *,
                                    client_order_id: str | None = None, wait: bool = True,
                                    timeout: float | None = None) -> OrderResult:
        """Sell about ``usd_amount`` dollars of ``symbol`` at market, held or not.

        What a perp exchange's sell does: it reduces a long, and past zero it
        opens (or adds to) a short, which the risk limits check like a buy.
        Sized, blocks and raises like :meth:`market_buy`.
        """
        return await self._buy_usd(symbol, usd_amount, "MKT", None, _market_tif(symbol),
                                   client_order_id, wait, timeout,
                                   f"market_sell_usd({symbol_label(symbol)}, {usd_amount!r})",
                                   side="SELL")

    async def limit_buy_async(self, symbol: Any, usd_amount: float, limit_price: float, *,
                              tif: str = "DAY", client_order_id: str | None = None,
                              wait: bool = True, timeout: float | None = None) -> OrderResult:
        """Buy ``usd_amount`` dollars' worth at ``limit_price`` or better (quantity at the limit).

        Blocks up to ``timeout`` seconds until IB accepts (or fills) the order.
        Raises like :meth:`market_buy`.
        """
        what = f"limit_buy({symbol_label(symbol)}, {usd_amount!r}, {limit_price!r})"
        return await self._buy_usd(symbol, usd_amount, "LMT", limit_price, tif, client_order_id,
                                   wait, timeout, what)

    async def market_sell_async(self, symbol: Any, percentage: float = 100, *,
                                client_order_id: str | None = None, wait: bool = True,
                                timeout: float | None = None) -> OrderResult:
        """Sell ``percentage`` (0-100] of the long position in ``symbol`` at market.

        The quantity is rounded down to the size increment; 100 sells it all.
        Blocks up to ``timeout`` seconds until it fills.

        Raises:
            NoPositionError: no long position (nothing sent).
            Otherwise like :meth:`market_buy`.
        """
        return await self._sell_pct(symbol, percentage, "MKT", None, _market_tif(symbol),
                                    client_order_id, wait, timeout,
                                    f"market_sell({symbol_label(symbol)}, {percentage!r})")

    async def limit_sell_async(self, symbol: Any, percentage: float, limit_price: float, *,
                               tif: str = "DAY", client_order_id: str | None = None,
                               wait: bool = True, timeout: float | None = None) -> OrderResult:
        """Sell ``percentage`` of the long position at ``limit_price`` or better.

        Blocks up to ``timeout`` seconds until IB accepts (or fills) it.
        Raises like :meth:`market_sell`.
        """
        what = f"limit_sell({symbol_label(symbol)}, {percentage!r}, {limit_price!r})"
        return await self._sell_pct(symbol, percentage, "LMT", limit_price, tif, client_order_id,
                                    wait, timeout, what)

    async def place_order_async(
        self, symbol: Any, side: str, quantity: float, order_type: str = "MKT",
        limit_price: float | None = None, stop_price: float | None = None,
        trail_percent: float | None = None, trail_amount: float | None = None,
        tif: str = "DAY", client_order_id: str | None = None, wait: bool = True,
        timeout: float | None = None,
    ) -> OrderResult:
        """Place any supported order: MKT, LMT, STP, STP LMT, TRAIL, MOC, LOC, MIDPRICE.

        Args:
            symbol: Symbol text or an ib_async Contract.
            side: ``BUY`` or ``SELL``.
            quantity: Units, a multiple of the contract's size increment.
            order_type: MKT, LMT, STP, STP LMT, TRAIL, MOC, LOC or MIDPRICE (one
                row each in :data:`ib_nice_funcs.model.ORDER_SPECS`).
            limit_price: LMT, LOC and STP LMT (required); MIDPRICE (optional cap).
                Put on the tick grid in your favour.
            stop_price: STP and STP LMT (required); TRAIL (optional initial stop).
                A BUY STP LMT's limit is at or above its stop, a SELL's at or below.
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
        request = validate_order(symbol, side, quantity, order_type, limit_price, stop_price,
                                 trail_percent, trail_amount, tif, client_order_id)
        instrument = parse_symbol(symbol)
        deadline = self.ctx.deadline(timeout)
        reference = request.limit_price or request.stop_price
        if request.order_type == "TRAIL":
            reference = None  # the trail moves with the market: value it at the quote
        tws_down = await self._route(request, instrument, deadline)
        _, unit_usd = await self._value(symbol, request, instrument, deadline, reference)
        what = (f"place_order({symbol_label(symbol)}, {request.side}, {quantity!r}, "
                f"{request.order_type})")
        sizer: Sizer = quantity_sizer(request.quantity, quantity)
        order = PlannedOrder(instrument, request, sizer, unit_usd,
                             explicit_id=client_order_id is not None, wait=wait, what=what)
        return await self.router.place(order, deadline, tws_down)

    async def cancel_order_async(self, order_id: int | str, *,
                                 timeout: float | None = None) -> OrderResult:
        """Cancel one order by IB order id (int) or client order id (str).

        Only this API client's orders can be cancelled one by one (IB's
        rule); use :meth:`cancel_all` for the others. Blocks up to ``timeout``
        seconds until IB confirms. With ``order_failover`` on and TWS down,
        the Client Portal cancels it: by client order id, or by an order id
        the portal gave (a TWS order id is mapped through this process's
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
        _check_order_id(order_id)
        return await self.router.cancel(order_id, self.ctx.deadline(timeout))

    async def get_open_orders_async(self, *, timeout: float | None = None
                                    ) -> list[OpenOrderRow]:
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
        return await self.router.open_orders(self.ctx.deadline(timeout))

    # -- the blocking API: one-liners over the coroutines ---------------------------------

    market_buy = blocking(market_buy_async)
    market_sell_usd = blocking(market_sell_usd_async)
    limit_buy = blocking(limit_buy_async)
    market_sell = blocking(market_sell_async)
    limit_sell = blocking(limit_sell_async)
    place_order = blocking(place_order_async)
    cancel_order = blocking(cancel_order_async)
    get_open_orders = blocking(get_open_orders_async)


def _check_wait(wait: object) -> None:
    if not isinstance(wait, bool):
        raise TypeError(f"wait must be True or False, got {wait!r}")


def _check_order_id(order_id: object) -> None:
    if isinstance(order_id, bool) or not isinstance(order_id, (numbers.Integral, str)):
        raise TypeError(
            f"order_id must be an int order id or a str client order id, got {order_id!r}")
    if isinstance(order_id, str) and not order_id.strip():
        raise ValueError("order_id is empty; pass an order id or a client order id")
    if not isinstance(order_id, str) and int(order_id) <= 0:
        raise ValueError(f"order_id must be a positive int, got {order_id!r}")


def _market_tif(symbol: Any) -> str:
    """DAY for market orders, except crypto: IB's PAXOS takes market orders as IOC."""
    try:
        return "IOC" if parse_symbol(symbol).asset_class == "crypto" else "DAY"
    except (TypeError, ValueError):
        return "DAY"  # the validation that follows names the problem

