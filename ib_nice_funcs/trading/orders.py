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

import numbers
from typing import Any

from ..errors import ConnectionFailedError
from ..symbols import parse_symbol, symbol_label
from .desk import Desk
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

    async def _route(self, deadline: float) -> ConnectionFailedError | None:
        """None when TWS takes orders; the TWS failure when they must fail over."""
        route = await self.router.route(deadline)
        return route if isinstance(route, ConnectionFailedError) else None

    async def _buy_usd(self, symbol: Any, usd_amount: float, order_type: str,
                       limit_price: float | None, tif: str, client_order_id: str | None,
                       wait: bool, timeout: float | None, what: str,
                       side: str = "BUY") -> dict[str, Any]:
        _check_wait(wait)
        usd = validate_usd_amount(usd_amount)
        request = validate_order(symbol, side, 1.0, order_type, limit_price=limit_price, tif=tif,
                                 client_order_id=client_order_id)
        if request.limit_price is not None:
            check_usd_at_price(usd, request.limit_price)
        instrument = parse_symbol(symbol)
        deadline = self.ctx.deadline(timeout)
        tws_down = await self._route(deadline)
        price = request.limit_price if request.limit_price is not None else \
            await self.ctx.price(symbol, deadline)
        unit_usd = await self.ctx.usd_per_unit(instrument, price, deadline)
        order = PlannedOrder(instrument, request, usd_sizer(usd, unit_usd, price, what), unit_usd,
                             explicit_id=client_order_id is not None, wait=wait, what=what)
        return await self.router.place(order, deadline, tws_down)

    async def _sell_pct(self, symbol: Any, percentage: float, order_type: str,
                        limit_price: float | None, tif: str, client_order_id: str | None,
                        wait: bool, timeout: float | None, what: str) -> dict[str, Any]:
        _check_wait(wait)
        pct = validate_percentage(percentage)
        request = validate_order(symbol, "SELL", 1.0, order_type, limit_price=limit_price,
                                 tif=tif, client_order_id=client_order_id)
        instrument = parse_symbol(symbol)
        deadline = self.ctx.deadline(timeout)
        tws_down = await self._route(deadline)
        # A sell of a held position only reduces it, which the risk check always
        # allows; the limit price (or IB's mark) is enough to value it.
        order = PlannedOrder(instrument, request, percent_sizer(pct, what), request.limit_price,
                             explicit_id=client_order_id is not None, wait=wait, what=what)
        return await self.router.place(order, deadline, tws_down)

    # -- nice_funcs order helpers (coroutines) ---------------------------------------------

    async def market_buy_async(self, symbol: Any, usd_amount: float, *,
                               client_order_id: str | None = None, wait: bool = True,
                               timeout: float | None = None) -> dict[str, Any]:
        """:meth:`market_buy` as a coroutine for the loop thread."""
        return await self._buy_usd(symbol, usd_amount, "MKT", None, _market_tif(symbol),
                                   client_order_id, wait, timeout,
                                   f"market_buy({symbol_label(symbol)}, {usd_amount!r})")

    async def market_sell_usd_async(self, symbol: Any, usd_amount: float, *,
                                    client_order_id: str | None = None, wait: bool = True,
                                    timeout: float | None = None) -> dict[str, Any]:
        """:meth:`market_sell_usd` as a coroutine for the loop thread."""
        return await self._buy_usd(symbol, usd_amount, "MKT", None, _market_tif(symbol),
                                   client_order_id, wait, timeout,
                                   f"market_sell_usd({symbol_label(symbol)}, {usd_amount!r})",
                                   side="SELL")

    async def limit_buy_async(self, symbol: Any, usd_amount: float, limit_price: float, *,
                              tif: str = "DAY", client_order_id: str | None = None,
                              wait: bool = True, timeout: float | None = None) -> dict[str, Any]:
        """:meth:`limit_buy` as a coroutine for the loop thread."""
        what = f"limit_buy({symbol_label(symbol)}, {usd_amount!r}, {limit_price!r})"
        return await self._buy_usd(symbol, usd_amount, "LMT", limit_price, tif, client_order_id,
                                   wait, timeout, what)

    async def market_sell_async(self, symbol: Any, percentage: float = 100, *,
                                client_order_id: str | None = None, wait: bool = True,
                                timeout: float | None = None) -> dict[str, Any]:
        """:meth:`market_sell` as a coroutine for the loop thread."""
        return await self._sell_pct(symbol, percentage, "MKT", None, _market_tif(symbol),
                                    client_order_id, wait, timeout,
                                    f"market_sell({symbol_label(symbol)}, {percentage!r})")

    async def limit_sell_async(self, symbol: Any, percentage: float, limit_price: float, *,
                               tif: str = "DAY", client_order_id: str | None = None,
                               wait: bool = True, timeout: float | None = None) -> dict[str, Any]:
        """:meth:`limit_sell` as a coroutine for the loop thread."""
        what = f"limit_sell({symbol_label(symbol)}, {percentage!r}, {limit_price!r})"
        return await self._sell_pct(symbol, percentage, "LMT", limit_price, tif, client_order_id,
                                    wait, timeout, what)

    async def place_order_async(
        self, symbol: Any, side: str, quantity: float, order_type: str = "MKT",
        limit_price: float | None = None, stop_price: float | None = None,
        trail_percent: float | None = None, trail_amount: float | None = None,
        tif: str = "DAY", client_order_id: str | None = None, wait: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """:meth:`place_order` as a coroutine for the loop thread."""
        _check_wait(wait)
        request = validate_order(symbol, side, quantity, order_type, limit_price, stop_price,
                                 trail_percent, trail_amount, tif, client_order_id)
        instrument = parse_symbol(symbol)
        deadline = self.ctx.deadline(timeout)
        tws_down = await self._route(deadline)
        reference = request.limit_price or request.stop_price
        if reference is None or request.order_type == "TRAIL":
            reference = await self.ctx.price(symbol, deadline)
        unit_usd = await self.ctx.usd_per_unit(instrument, reference, deadline)
        what = (f"place_order({symbol_label(symbol)}, {request.side}, {quantity!r}, "
                f"{request.order_type})")
        sizer: Sizer = quantity_sizer(request.quantity, quantity)
        order = PlannedOrder(instrument, request, sizer, unit_usd,
                             explicit_id=client_order_id is not None, wait=wait, what=what)
        return await self.router.place(order, deadline, tws_down)

    async def cancel_order_async(self, order_id: int | str, *,
                                 timeout: float | None = None) -> dict[str, Any]:
        """:meth:`cancel_order` as a coroutine for the loop thread."""
        _check_order_id(order_id)
        return await self.router.cancel(order_id, self.ctx.deadline(timeout))

    async def get_open_orders_async(self, *, timeout: float | None = None
                                    ) -> list[dict[str, Any]]:
        """:meth:`get_open_orders` as a coroutine for the loop thread."""
        return await self.router.open_orders(self.ctx.deadline(timeout))

    # -- the blocking API ----------------------------------------------------------------

    def market_buy(self, symbol: Any, usd_amount: float, *, client_order_id: str | None = None,
                   wait: bool = True, timeout: float | None = None) -> dict[str, Any]:
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
        return self._block(lambda: self.market_buy_async(
            symbol, usd_amount, client_order_id=client_order_id, wait=wait, timeout=timeout),
            self._seconds(timeout), "market_buy")

    def market_sell_usd(self, symbol: Any, usd_amount: float, *,
                        client_order_id: str | None = None, wait: bool = True,
                        timeout: float | None = None) -> dict[str, Any]:
        """Sell about ``usd_amount`` dollars of ``symbol`` at market, held or not.

        What a perp exchange's sell does: it reduces a long, and past zero it
        opens (or adds to) a short, which the risk limits check like a buy.
        Sized, blocks and raises like :meth:`market_buy`.
        """
        return self._block(lambda: self.market_sell_usd_async(
            symbol, usd_amount, client_order_id=client_order_id, wait=wait, timeout=timeout),
            self._seconds(timeout), "market_sell_usd")

    def limit_buy(self, symbol: Any, usd_amount: float, limit_price: float, *, tif: str = "DAY",
                  client_order_id: str | None = None, wait: bool = True,
                  timeout: float | None = None) -> dict[str, Any]:
        """Buy ``usd_amount`` dollars' worth at ``limit_price`` or better (quantity at the limit).

        Blocks up to ``timeout`` seconds until IB accepts (or fills) the order.
        Raises like :meth:`market_buy`.
        """
        return self._block(lambda: self.limit_buy_async(
            symbol, usd_amount, limit_price, tif=tif, client_order_id=client_order_id,
            wait=wait, timeout=timeout), self._seconds(timeout), "limit_buy")

    def market_sell(self, symbol: Any, percentage: float = 100, *,
                    client_order_id: str | None = None, wait: bool = True,
                    timeout: float | None = None) -> dict[str, Any]:
        """Sell ``percentage`` (0-100] of the long position in ``symbol`` at market.

        The quantity is rounded down to the size increment; 100 sells it all.
        Blocks up to ``timeout`` seconds until it fills.

        Raises:
            NoPositionError: no long position (nothing sent).
            Otherwise like :meth:`market_buy`.
        """
        return self._block(lambda: self.market_sell_async(
            symbol, percentage, client_order_id=client_order_id, wait=wait, timeout=timeout),
            self._seconds(timeout), "market_sell")

    def limit_sell(self, symbol: Any, percentage: float, limit_price: float, *,
                   tif: str = "DAY", client_order_id: str | None = None, wait: bool = True,
                   timeout: float | None = None) -> dict[str, Any]:
        """Sell ``percentage`` of the long position at ``limit_price`` or better.

        Blocks up to ``timeout`` seconds until IB accepts (or fills) it.
        Raises like :meth:`market_sell`.
        """
        return self._block(lambda: self.limit_sell_async(
            symbol, percentage, limit_price, tif=tif, client_order_id=client_order_id,
            wait=wait, timeout=timeout), self._seconds(timeout), "limit_sell")

    def place_order(
        self, symbol: Any, side: str, quantity: float, order_type: str = "MKT",
        limit_price: float | None = None, stop_price: float | None = None,
        trail_percent: float | None = None, trail_amount: float | None = None,
        tif: str = "DAY", client_order_id: str | None = None, wait: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Any]:
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
        return self._block(lambda: self.place_order_async(
            symbol, side, quantity, order_type, limit_price, stop_price, trail_percent,
            trail_amount, tif, client_order_id, wait, timeout),
            self._seconds(timeout), "place_order")

    def cancel_order(self, order_id: int | str, *, timeout: float | None = None) -> dict[str, Any]:
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
        return self._block(lambda: self.cancel_order_async(order_id, timeout=timeout),
                           self._seconds(timeout), f"cancel_order({order_id!r})")

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
        return self._block(lambda: self.get_open_orders_async(timeout=timeout),
                           self._seconds(timeout), "open orders")


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

