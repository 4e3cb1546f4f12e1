"""The "portal" source: the Client Portal Web API as a data source and an order failover.

Data: :meth:`PortalSource.prices` and :meth:`PortalSource.bars` follow the
data-source protocol of :mod:`ib_nice_funcs.sources`, so the registry tries
this source after "ib" when ``IB_PORTAL_URL`` is set. During a 429 back-off
every call raises :class:`~ib_nice_funcs.errors.SourceUnavailableError` at
once (no network), so data falls through to the next source; afterwards the
portal is used again by itself.

Orders (for the trading layer's failover when ``order_failover`` is on):
:meth:`place_order`, :meth:`find_order`, :meth:`open_orders`,
:meth:`cancel_order`, :meth:`positions`, :meth:`account_summary`,
:meth:`is_paper`. Results have the keys of the TWS trading helpers. Orders
keep their client order id (``cOID``): placing an id that IB already knows
returns that order instead of sending a second one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import LiveTradingDisabledError, SourceUnavailableError
from ..model import OrderRequest
from ..portal.client import PortalClient
from ..portal.orders import OrderDesk
from ..symbols import Instrument, parse_symbol

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ..config import Settings
    from ..timeframes import Timeframe

__all__ = ["PortalSource"]


class PortalSource:
    """Prices, bars and (failover) orders through one Client Portal gateway.

    Threading contract: every method may be called from any thread; each
    blocks at most ``timeout`` seconds (default: the ``timeout`` setting).

    Args:
        settings: Uses ``portal_url``, ``portal_ca``, ``portal_verify``,
            ``portal_penalty_s``, ``account``, ``allow_live``, ``timeout``,
            ``connect_timeout``, ``portal_rate_per_s``,
            ``portal_snapshot_wait_s``, ``portal_tickle_s`` and
            ``portal_max_confirmations``.
        client: A ready :class:`PortalClient` (tests); made from ``settings`` otherwise.

    Raises:
        SourceUnavailableError: ``portal_url`` is not set.
    """

    name = "portal"

    def __init__(self, settings: Settings, *, client: PortalClient | None = None) -> None:
        if client is None and not settings.portal_url:
            raise SourceUnavailableError(
                "the Client Portal source needs its URL: set IB_PORTAL_URL or "
                "configure(portal_url='https://localhost:5000/v1/api')")
        self.settings = settings
        try:
            self.client = client or PortalClient(
                settings.portal_url or "",
                verify=settings.portal_verify,
                ca_path=settings.portal_ca,
                account=settings.account,
                penalty_s=settings.portal_penalty_s,
                rate=float(settings.portal_rate_per_s),
                connect_timeout=settings.connect_timeout,
                snapshot_wait=float(settings.portal_snapshot_wait_s),
                tickle_interval=float(settings.portal_tickle_s),
                clock=settings.clock,
            )
        except ValueError as exc:
            raise SourceUnavailableError(str(exc)) from None
        self.orders = OrderDesk(
            self.client,
            max_confirmations=int(settings.portal_max_confirmations))

    def __repr__(self) -> str:
        return f"PortalSource({self.client.base_url!r})"

    def close(self) -> None:
        """Stop the keep-alive and close the connections."""
        self.client.close()

    def _deadline(self, timeout: float | None) -> float:
        budget = self.settings.timeout if timeout is None else float(timeout)
        if not budget > 0:
            raise ValueError(f"timeout={timeout!r} must be a positive number of seconds")
        return time.monotonic() + budget

    # -- data ---------------------------------------------------------------------------

    def prices(
        self, instruments: Sequence[Instrument], *, timeout: float
    ) -> dict[str, float | None]:
        """Snapshot prices keyed by ``Instrument.symbol``; blocks up to ``timeout`` seconds.

        Raises:
            SourceUnavailableError: backing off after a 429 (nothing sent), or the gateway failed.
            UnknownSymbolError, MarketDataNotSubscribedError, ConnectionFailedError,
            RequestTimeoutError.
        """
        what = "price of " + ", ".join(i.symbol for i in instruments)
        self.client.penalty.check(what)
        return self.client.prices(instruments, self._deadline(timeout))

    def bars(
        self, instrument: Instrument, timeframe: Timeframe, start: datetime, end: datetime, *,
        timeout: float,
    ) -> pd.DataFrame:
        """OHLCV bars in ``[start, end)``; blocks up to ``timeout`` seconds.

        Raises:
            SourceUnavailableError: backing off after a 429 (nothing sent), or the gateway failed.
            UnknownSymbolError, NoDataError, ConnectionFailedError, RequestTimeoutError.
        """
        self.client.penalty.check(f"{timeframe.name} bars of {instrument.symbol}")
        return self.client.history(instrument, timeframe, start, end, self._deadline(timeout))

    # -- account ---------------------------------------------------------------------------

    def is_paper(self, *, timeout: float | None = None) -> bool:
        """Whether the gateway's account is a paper account (``isPaper``)."""
        return self.client.is_paper(self._deadline(timeout))

    def account(self, *, timeout: float | None = None) -> str:
        """The account id orders go to."""
        return self.client.account(self._deadline(timeout))

    def positions(self, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """Every open position as nice_funcs position dicts (all pages)."""
        return self.client.positions(self._deadline(timeout))

    def account_summary(self, *, timeout: float | None = None) -> dict[str, Any]:
        """``account, net_liquidation, available_funds, buying_power, total_cash, currency,
        values`` (every summary key) and ``source``."""
        return self.client.account_summary(self._deadline(timeout))

    # -- orders ------------------------------------------------------------------------------

    def _require_trading(self, deadline: float) -> None:
        # Defence in depth: the trading layer checks too, but a portal order
        # must never reach a live account without the explicit switch.
        if not self.settings.allow_live and not self.client.is_paper(deadline):
            raise LiveTradingDisabledError(
                "the Client Portal account is a live account and live trading is off; nothing "
                "was sent. Set IB_NICE_FUNCS_ALLOW_LIVE=1 / configure(allow_live=True) to trade it")

    def place_order(
        self,
        instrument: Instrument | str | Any,
        side: str,
        quantity: float,
        order_type: str = "MKT",
        limit_price: float | None = None,
        stop_price: float | None = None,
        trail_percent: float | None = None,
        trail_amount: float | None = None,
        tif: str = "DAY",
        client_order_id: str | None = None,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Place one order through the Client Portal (questions confirmed, cOID kept).

        If IB already has an order with ``client_order_id`` (placed over TWS
        before a failover, or earlier here), that order is returned
        (``existing=True``) and nothing is sent. Blocks up to ``timeout``.

        Returns:
            ``success, order_id, client_order_id, status, filled_qty,
            avg_price, error`` (+ ``code, symbol, side, quantity, order_type,
            source, questions``).

        Raises:
            ValueError: a malformed order (nothing sent).
            LiveTradingDisabledError: a live account without ``allow_live``.
            UnknownSymbolError: no such contract (nothing sent).
            RequestTimeoutError: no answer in time (call :meth:`find_order` before retrying).
            SourceUnavailableError, ConnectionFailedError: the gateway failed or backs off.
        """
        inst = instrument if isinstance(instrument, Instrument) else parse_symbol(instrument)
        request = OrderRequest(
            symbol=inst.symbol, side=str(side).strip().upper(), quantity=quantity,
            order_type=str(order_type).strip().upper(), limit_price=limit_price,
            stop_price=stop_price, trail_percent=trail_percent, trail_amount=trail_amount,
            tif=tif, client_order_id=client_order_id or "")
        return self.place_request(inst, request, quantity, timeout=timeout)

    def place_request(self, instrument: Instrument, request: OrderRequest, quantity: float, *,
                      timeout: float | None = None) -> dict[str, Any]:
        """:meth:`place_order` for an :class:`~ib_nice_funcs.model.OrderRequest` as it is.

        The trading layer's failover passes its validated request here
        unchanged (prices already on the contract's grid). Blocks and raises
        like :meth:`place_order`.
        """
        deadline = self._deadline(timeout)
        self.client.penalty.check(f"place order {request.client_order_id}".strip())
        self._require_trading(deadline)
        return self.orders.place_request(instrument, request, quantity, deadline=deadline)

    def find_order(
        self, client_order_id: str, *, timeout: float | None = None
    ) -> dict[str, Any] | None:
        """The order IB holds under ``client_order_id`` today (any client), or None.

        Blocks up to ``timeout`` (the live-orders endpoint allows 1 request per 5 s).
        """
        if not isinstance(client_order_id, str) or not client_order_id.strip():
            raise ValueError("client_order_id must be a non-empty string")
        return self.orders.find(client_order_id.strip(), self._deadline(timeout), fresh=True)

    def open_orders(self, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """Working orders on the account, as ``get_open_orders`` rows (``source`` "portal")."""
        return self.orders.open_orders(self._deadline(timeout))

    def cancel_order(self, order_id: int | str, *, timeout: float | None = None) -> dict[str, Any]:
        """Cancel by IB order id (int) or client order id (str); a result dict.

        Raises:
            LiveTradingDisabledError: a live account without ``allow_live``.
            ConnectionFailedError, RequestTimeoutError, SourceUnavailableError.
        """
        if isinstance(order_id, bool) or not isinstance(order_id, (int, str)) or \
                (isinstance(order_id, str) and not order_id.strip()):
            raise TypeError(f"order_id must be an int order id or a str client order id, "
                            f"got {order_id!r}")
        deadline = self._deadline(timeout)
        self._require_trading(deadline)
        return self.orders.cancel(order_id, deadline)
