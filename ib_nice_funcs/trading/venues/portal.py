"""The Client Portal venue: orders and account reads while TWS / IB Gateway is unreachable.

The router (:mod:`ib_nice_funcs.trading.router`) decides when to come here:
only with ``configure(order_failover=True)`` (``IB_NICE_FUNCS_ORDER_FAILOVER=1``)
and a Client Portal URL. A portal order passes the same pipeline as a TWS
order, in the same order, and nothing is sent unless all of it passes:

1. argument validation (done by the order helpers before either path);
2. the live-account guard: the portal account's ``isPaper`` flag (a ``D``
   account id when the gateway sends no flag) must say paper, unless
   ``allow_live``;
3. idempotency: the client order id is the same id the TWS path sends as
   ``orderRef`` and the portal sends as ``cOID``. This Trader's own records
   (both paths) and the portal's live orders are asked before anything is
   sent, and an order found is returned (``"existing": True``);
4. the risk check, on a snapshot built from the portal's positions and
   account summary (plus portal fills the positions do not show yet);
5. send through :meth:`~ib_nice_funcs.sources.portal.PortalSource.place_order`.

Never twice: when the TWS gateway may already hold the order (it was sent
over TWS and not acknowledged), the portal is asked for the id and the order
is returned if found; if it is not found the order is NOT placed again (TWS
may still deliver it) and the result says ``status="Unknown"``. Only an id
TWS never received is placed through the portal.

Threading: every method here blocks (the portal client is synchronous and
thread-safe); the router runs them on a worker thread. State that belongs to
the loop thread (the TWS ledger, contract rules, the fleet's daily-P&L
baseline, USD rates) is read through short hops onto the loop
(:meth:`TradingContext.run`). Getting out (cancel all, close, flatten) is
:mod:`.portal_closing`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard, cast

from ...errors import (
    ConnectionFailedError,
    IBNiceFuncsError,
    LiveTradingDisabledError,
    RequestTimeoutError,
    RiskLimitError,
    SourceUnavailableError,
    UnknownSymbolError,
)
from ...fleet.state import with_working_orders
from ...model import DONE_STATES, OpenOrderRow, OrderResult
from ..account import build_snapshot, daily_pnl, day_trades_used, trading_day
from ..contracts import ContractSpec, is_instrument
from ..results import carry_result, on_the_grid, order_result
from ..risk import PDT_SEC_TYPES, PortfolioSnapshot, adds_risk, check_order

if TYPE_CHECKING:  # pragma: no cover
    from ...model import OrderRequest
    from ...sources.portal import PortalSource
    from ...symbols import Instrument
    from ..context import TradingContext
    from ..sizing import PlannedOrder
    from .tws import TwsVenue

__all__ = ["PortalVenue", "TwsFacts", "default_spec", "holds_row", "portal_result",
           "time_left"]

log = logging.getLogger("ib_nice_funcs")

#: A portal fill the positions endpoint does not show yet is counted this long at most.
_PENDING_TTL_S = 300.0
#: Size steps when the Trader has no contract details for the instrument yet.
_DEFAULT_INCREMENT = {"stock": 1.0, "fx": 1.0, "crypto": 1e-8}
_SEC_TYPE = {"stock": "STK", "fx": "CASH", "crypto": "CRYPTO"}


@dataclass(frozen=True)
class TwsFacts:
    """What the TWS side of this Trader knows about one client order id.

    Attributes:
        state: ``"none"`` (never sent over TWS by this Trader), ``"acked"``
            (IB acknowledged it) or ``"unacked"`` (sent, never acknowledged:
            the TWS gateway may still hold it).
        last: The last result seen for it over TWS.
        spec: Contract rules of the instrument when TWS already gave them.
    """

    state: str
    last: OrderResult | None
    spec: ContractSpec | None


def default_spec(instrument: Instrument, known: ContractSpec | None = None) -> ContractSpec:
    """Contract rules for a portal order: TWS's when known, else the asset class defaults."""
    if known is not None:
        return known
    increment = _DEFAULT_INCREMENT.get(instrument.asset_class, 1.0)
    return ContractSpec(contract=None, symbol=instrument.symbol, min_tick=0.0,
                        size_increment=increment, min_size=increment)


def time_left(deadline: float) -> float:
    """Seconds to ``deadline`` (monotonic), at least 0.05: a blocking call's timeout."""
    return max(0.05, deadline - time.monotonic())


def portal_result(result: dict[str, Any]) -> OrderResult:
    """A result dict of :class:`~ib_nice_funcs.sources.portal.PortalSource`'s order calls
    as the :class:`OrderResult` it is (``portal.orders.result_dict`` builds each one with
    :func:`~ib_nice_funcs.model.order_result`)."""
    return cast("OrderResult", result)


def holds_row(instrument: Instrument, row: Mapping[str, Any]) -> bool:
    """Whether a Client Portal position or order row is ``instrument``."""
    return is_instrument(instrument, row.get("con_id"), row.get("symbol"))


class PortalVenue:
    """Orders, positions, open orders and cancels through the Client Portal.

    Threading contract: any thread except the loop thread; each method blocks
    at most until its ``deadline``.
    """

    name = "portal"

    def __init__(self, ctx: TradingContext, tws: TwsVenue) -> None:
        self.ctx = ctx
        self.tws = tws
        self.settings = ctx.settings
        self._lock = threading.Lock()
        # Client order id -> the portal's last result (None: sent, outcome unknown).
        self._placed: dict[str, OrderResult | None] = {}
        # Symbol -> (quantity the positions showed before, signed filled delta, when).
        self._pending: dict[str, tuple[float, float, float]] = {}
        self._down = False

    # -- switches ----------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether orders may fail over (``order_failover`` on and a portal URL set)."""
        return bool(self.settings.order_failover and self.settings.portal_url)

    def source(self, cause: BaseException) -> PortalSource:
        """The portal source; re-raises ``cause`` when failover cannot run."""
        if not self.active:
            raise cause
        try:
            return self.ctx.client.source("portal")
        except (SourceUnavailableError, ValueError) as exc:
            raise ConnectionFailedError(
                f"{cause}; order_failover is on but the Client Portal is unavailable ({exc})"
            ) from cause

    def note_down(self, cause: BaseException) -> None:
        """Log once per outage that calls now go to the Client Portal."""
        with self._lock:
            first, self._down = not self._down, True
        if first:
            log.warning(
                "TWS / IB Gateway is down or not answering (%s); orders and account calls fail "
                "over to the Client Portal at %s until it is back (order_failover is on)",
                cause, self.settings.portal_url,
            )

    def note_up(self) -> None:
        """TWS answered again (logged once)."""
        with self._lock:
            was, self._down = self._down, False
        if was:
            log.info("TWS / IB Gateway answers again; orders go through it")

    def placed(self, client_order_id: str) -> OrderResult | None:
        """This Trader's last portal result for the id (None: never placed through the portal)."""
        with self._lock:
            last = self._placed.get(client_order_id)
        return last.copy() if last is not None else None

    def resolve(self, client_order_id: str, deadline: float) -> OrderResult | None:
        """Before a TWS attempt: what the portal side holds under the id, if anything.

        An id whose portal placement had no answer is looked up on the portal
        first; when the portal cannot tell, an ``Unknown`` result is returned
        so the TWS path does not send it (it returns that result instead).
        """
        with self._lock:
            if client_order_id not in self._placed:
                return None
            last = self._placed[client_order_id]
        if last is not None:
            return last.copy()
        try:
            portal = self.source(ConnectionFailedError("the Client Portal is not configured"))
            answer = portal.find_order(client_order_id, timeout=time_left(deadline))
        except (IBNiceFuncsError, OSError) as exc:
            return self._unknown(client_order_id, f"the Client Portal cannot tell ({exc})")
        found = portal_result(answer) if answer is not None else None
        with self._lock:
            if found is None:
                self._placed.pop(client_order_id, None)  # definitive: IB never got it
            else:
                self._placed[client_order_id] = found.copy()
        return found

    # -- loop hops -----------------------------------------------------------------------

    def _tws_facts(self, client_order_id: str, instrument: Instrument, deadline: float) -> TwsFacts:
        async def read() -> TwsFacts:
            state, last = self.tws.last_result(client_order_id)
            return TwsFacts(state, last, self.ctx.contracts.known(instrument))

        return self.ctx.run(read, deadline, f"order {client_order_id} state")

    def _usd_rate(self, currency: str, deadline: float) -> float:
        return self.ctx.run(lambda: self.ctx.usd_rate(currency, deadline), deadline,
                            f"USD rate of {currency}")

    # -- orders --------------------------------------------------------------------------

    def place(self, order: PlannedOrder, cause: BaseException, deadline: float) -> OrderResult:
        """Place (or find) the order through the Client Portal after TWS failed with ``cause``.

        Returns:
            The result dict (``source`` "portal" when the portal answered;
            ``existing`` True when the order was already there). A failure
            the caller turns into an error has ``success`` False.

        Raises:
            ``cause``: failover is off or has no portal.
            LiveTradingDisabledError, RiskLimitError, OrderSizeError,
            NoPositionError, UnknownSymbolError, ValueError: nothing was sent.
            RequestTimeoutError: the portal did not answer the placement in time
                (``exc.result``; calling again with the id never sends it twice).
            ConnectionFailedError: the portal failed too.
        """
        portal = self.source(cause)
        if time.monotonic() >= deadline:
            raise cause  # the TWS attempt used the whole budget: no time left to fail over
        self.note_down(cause)
        instrument, request, what = order.instrument, order.request, order.what
        coid = request.client_order_id
        try:
            account = self.guard(portal, deadline, what)
            facts = self._tws_facts(coid, instrument, deadline)
            with self._lock:
                known = coid in self._placed
            if known or order.explicit_id or facts.state != "none":
                answer = portal.find_order(coid, timeout=time_left(deadline))
                if answer is not None:
                    found = portal_result(answer)
                    log.info("%s: order %s already exists at IB (status %s); not sending it "
                             "again", what, coid, found.get("status"))
                    return self.remember(coid, {**found, "existing": True})
                placed = self.placed(coid)
                if placed is not None:  # ours, though the portal no longer lists it
                    return {**placed, "existing": True}
                if facts.state == "acked" and facts.last is not None:
                    return {**facts.last, "existing": True}
                if facts.state == "unacked":
                    return self._unknown(coid, (
                        "TWS / IB Gateway took the order without acknowledging it and the "
                        "Client Portal does not list it; it was not sent through the portal, "
                        "because the TWS gateway may still deliver it"), instrument, request)
            return self._send(portal, order, facts, deadline=deadline, account=account)
        except (LiveTradingDisabledError, RiskLimitError, ValueError, TypeError):
            raise
        except RequestTimeoutError:
            raise
        except (SourceUnavailableError, ConnectionFailedError, OSError) as exc:
            raise ConnectionFailedError(
                f"{what}: TWS / IB Gateway failed ({cause}) and the Client Portal failed too "
                f"({exc}); nothing was sent through the portal") from exc

    def guard(self, portal: PortalSource, deadline: float, what: str) -> str:
        """The portal account, after the live-account guard (nothing is sent before it)."""
        account = portal.account(timeout=time_left(deadline))
        if not self.settings.allow_live and not portal.is_paper(timeout=time_left(deadline)):
            raise LiveTradingDisabledError(
                f"{what}: the Client Portal account {account} is a live account (isPaper is "
                "false); orders are refused and nothing was sent. To trade live on purpose set "
                "IB_NICE_FUNCS_ALLOW_LIVE=1 or call configure(allow_live=True)")
        return account

    def _send(self, portal: PortalSource, order: PlannedOrder, facts: TwsFacts, *,
              deadline: float, account: str) -> OrderResult:
        instrument, request, what = order.instrument, order.request, order.what
        coid = request.client_order_id
        spec = default_spec(instrument, facts.spec)
        snapshot, held = self._snapshot(portal, deadline)
        mine = [row for row in held if holds_row(instrument, row)]
        long_qty = sum(max(0.0, row["quantity"]) for row in mine)
        quantity = order.sizer.size(spec, long_qty if order.sizer.needs_held else 0.0)
        price = order.unit_usd
        if price is None or price <= 0:
            price = next((row["price_usd"] for row in mine if row["price_usd"] > 0), 0.0)
        sec_type = getattr(spec.contract, "secType", None) or instrument.sec_type or \
            _SEC_TYPE.get(instrument.asset_class, "")
        day_trade = self.ctx.limits.pdt_guard and sec_type in PDT_SEC_TYPES
        value = abs(quantity) * price * spec.multiplier
        breach = check_order(self.ctx.limits, snapshot, instrument.symbol, request.side,
                             value, opens_day_trade=day_trade)
        if breach is not None:
            raise RiskLimitError(breach.message, breach)
        if not adds_risk(snapshot, instrument.symbol, request.side, value):
            return self._place(portal, order, quantity, spec, mine, deadline)
        # An opening order: checked and sent under the fleet's account-wide lock, as
        # on TWS (the halt is read inside it; TradingHaltedError / FleetUnavailableError:
        # nothing sent), counting the other processes' working opening orders.
        fleet = self.ctx.fleet
        lock = fleet.opening(account, time_left(deadline))
        self.ctx.run(lock.__aenter__, deadline, what)
        try:
            working = self.ctx.run(lambda: fleet.working_elsewhere(account), deadline, what)
            if working:
                counted = dataclasses.replace(snapshot, positions_usd=with_working_orders(
                    snapshot.positions_usd, working))
                breach = check_order(self.ctx.limits, counted, instrument.symbol, request.side,
                                     value, opens_day_trade=day_trade)
                if breach is not None:
                    raise RiskLimitError(breach.message, breach)
            result = self._place(portal, order, quantity, spec, mine, deadline)
            if result.get("order_id") is not None and not result.get("existing"):
                self.ctx.run(lambda: fleet.reserve(account, coid, instrument.symbol,
                                                   request.side, value), deadline, what)
                if result.get("status") in DONE_STATES:
                    filled = bool(result.get("filled_qty"))

                    async def ended() -> None:
                        fleet.order_ended_soon(account, coid, filled)

                    self.ctx.run(ended, deadline, what)
                # A working portal order sends no end event here: it counts for the
                # others until the reservation expires (the safe side).
            return result
        finally:
            self.ctx.run(lambda: lock.__aexit__(None, None, None), deadline, what)

    def _place(self, portal: PortalSource, order: PlannedOrder, quantity: float,
               spec: ContractSpec, mine: list[dict[str, Any]], deadline: float) -> OrderResult:
        """Send the sized, checked order; the result (marked sent until the portal answers)."""
        instrument, request, what = order.instrument, order.request, order.what
        coid = request.client_order_id
        before = sum(row["quantity"] for row in mine)
        self.mark_sent(coid)
        try:
            placed = portal.place_request(instrument, on_the_grid(request, spec.min_tick),
                                          quantity, timeout=time_left(deadline))
        except RequestTimeoutError as exc:
            carry_result(exc, self._unknown(coid, str(exc), instrument, request, source="portal"))
            raise
        except (ValueError, TypeError, UnknownSymbolError, LiveTradingDisabledError,
                SourceUnavailableError):
            with self._lock:
                self._placed.pop(coid, None)  # refused before anything went out
            raise
        # Any other failure (a connection lost mid-request) leaves the mark: the next
        # call with this id asks the portal before sending.
        result: OrderResult = {**portal_result(placed), "source": "portal", "client_order_id": coid}
        filled = float(result.get("filled_qty") or 0.0)
        if filled and not result.get("existing"):
            self.note_fill(instrument.symbol, before, filled if request.side == "BUY" else -filled)
        log.info("%s: sent through the Client Portal (client order id %s, order id %s, "
                 "status %s)", what, coid, result.get("order_id"), result.get("status"))
        return self.remember(coid, result)

    def mark_sent(self, client_order_id: str) -> None:
        """Before a send: the id is out, its outcome unknown until the portal answers."""
        with self._lock:
            self._placed[client_order_id] = None

    def remember(self, client_order_id: str, result: OrderResult) -> OrderResult:
        with self._lock:
            self._placed[client_order_id] = result.copy()
        return result

    def _unknown(
        self, client_order_id: str, error: str, instrument: Instrument | None = None,
        request: OrderRequest | None = None, **extra: Any,
    ) -> OrderResult:
        return order_result(
            success=False, client_order_id=client_order_id, status="Unknown",
            error=(f"{error}. Call again with client_order_id={client_order_id!r} to get its "
                   "state (it will not be sent twice)"),
            symbol=instrument.symbol if instrument is not None else None,
            side=request.side if request is not None else None,
            order_type=request.order_type if request is not None else None, **extra)

    # -- risk snapshot -------------------------------------------------------------------

    def note_fill(self, symbol: str, before: float, delta: float) -> None:
        """A portal fill the positions endpoint may not show yet (counted until it does)."""
        with self._lock:
            base, moved, _ = self._pending.get(symbol, (before, 0.0, 0.0))
            self._pending[symbol] = (base, moved + delta, time.monotonic())

    def rows(self, positions: list[dict[str, Any]], deadline: float,
              priced: bool = True) -> list[dict[str, Any]]:
        """Positions with USD prices, plus portal fills the positions endpoint lags behind.

        The Client Portal serves positions from a cache that trails fills by
        seconds; until a symbol's quantity moves off what it was before our
        fill, the fill is added, so two quick orders cannot both pass a limit.
        ``priced=False`` skips the currency conversion (quantities only).
        """
        rates: dict[str, float] = {"USD": 1.0}

        def rate(currency: str | None) -> float:
            cur = (currency or "USD").upper()
            if not priced:
                return 1.0
            if cur not in rates:
                rates[cur] = self._usd_rate(cur, deadline)
            return rates[cur]

        rows: dict[str, dict[str, Any]] = {}
        for p in positions:
            price = float(p.get("current_price") or 0.0) or float(p.get("avg_cost") or 0.0)
            row = rows.setdefault(p["symbol"], {"symbol": p["symbol"], "con_id": p.get("con_id"),
                                                "quantity": 0.0, "price_usd": 0.0})
            row["quantity"] += float(p.get("quantity") or 0.0)
            if price > 0:
                row["price_usd"] = price * rate(p.get("currency"))
        now = time.monotonic()
        with self._lock:
            for symbol, (before, delta, when) in list(self._pending.items()):
                current = rows.get(symbol, {}).get("quantity", 0.0)
                if now - when > _PENDING_TTL_S or not math.isclose(current, before, abs_tol=1e-9):
                    del self._pending[symbol]  # the positions caught up (or it is too old)
                    continue
                row = rows.setdefault(symbol, {"symbol": symbol, "con_id": None,
                                               "quantity": 0.0, "price_usd": 0.0})
                row["quantity"] += delta
        return list(rows.values())

    def _snapshot(
        self, portal: PortalSource, deadline: float
    ) -> tuple[PortfolioSnapshot, list[dict[str, Any]]]:
        """The risk snapshot from the portal's positions and account summary.

        Raises:
            IBNiceFuncsError: the portal reports no net liquidation (nothing is sent).
        """
        positions = portal.positions(timeout=time_left(deadline))
        summary = portal.account_summary(timeout=time_left(deadline))
        net_liq = summary.get("net_liquidation")
        if net_liq is None:
            raise IBNiceFuncsError(
                "the Client Portal reported no net liquidation, so the risk check cannot run; "
                "nothing was sent. Check the account in the Client Portal gateway")
        rows = self.rows(positions, deadline)
        values = summary.get("values") or {}
        account = portal.account(timeout=time_left(deadline))
        baseline = self.ctx.run(
            lambda: self.ctx.daily_pnl_baseline(account, float(net_liq), None), deadline,
            "daily P&L")
        prev = values.get("previousdayequitywithloanvalue")
        ewl = values.get("equitywithloanvalue", values.get("equitywithloanvalue-s"))
        daily = daily_pnl(baseline, None, float(prev) if _number(prev) else None,
                          float(ewl) if _number(ewl) else None)
        left = values.get("daytradesremaining")
        used = day_trades_used([], trading_day(self.settings.clock()), {
            "DayTradesRemaining": float(left) if _number(left) else None})
        snapshot = build_snapshot(
            ((r["symbol"], r["quantity"], r["price_usd"], 1.0) for r in rows),
            net_liquidation=float(net_liq), daily=daily, day_trades=used)
        return snapshot, rows

    # -- positions, account, open orders, cancels ----------------------------------------

    def positions(self, cause: BaseException, deadline: float) -> list[dict[str, Any]]:
        """Every position from the portal (``source`` "portal"); re-raises ``cause`` when off."""
        portal = self.source(cause)
        self.note_down(cause)
        rows = portal.positions(timeout=time_left(deadline))
        # get_token_balance_usd reads sec_type, as the TWS rows carry it.
        return [{**row, "sec_type": row.get("sec_type") or row.get("asset_class"), "known": True}
                for row in rows]

    def position(self, instrument: Instrument, cause: BaseException,
                 deadline: float) -> dict[str, Any] | None:
        """The position in ``instrument`` from the portal, or None when flat."""
        return next((r for r in self.positions(cause, deadline)
                     if holds_row(instrument, r) and r["quantity"]), None)

    def account_number(self, tags: tuple[str, ...], cause: BaseException,
                       deadline: float) -> float | None:
        """An account value (IB tag names) from the portal's account summary."""
        portal = self.source(cause)
        self.note_down(cause)
        summary = portal.account_summary(timeout=time_left(deadline))
        keys = {"NetLiquidation": "net_liquidation", "AvailableFunds": "available_funds",
                "TotalCashValue": "total_cash"}
        for tag in tags:
            value = summary.get(keys.get(tag, tag.lower()))
            if isinstance(value, (int, float)):
                return float(value)
        return None

    def open_orders(self, cause: BaseException, deadline: float) -> list[OpenOrderRow]:
        """Working orders on the account from the portal (``source`` "portal")."""
        portal = self.source(cause)
        self.note_down(cause)
        rows = self.open_order_rows(portal, deadline)
        return sorted(rows, key=lambda r: str(r.get("order_id") or ""))

    @staticmethod
    def open_order_rows(portal: PortalSource, deadline: float) -> list[OpenOrderRow]:
        """The portal's working orders, as they come (``portal.open_orders``)."""
        # portal.order_mapping.open_order_row builds each row with OpenOrderRow's keys.
        return cast("list[OpenOrderRow]", portal.open_orders(timeout=time_left(deadline)))

    def cancel(self, order_id: int | str, cause: BaseException, deadline: float) -> OrderResult:
        """Cancel through the portal by client order id (or an order id the portal knows).

        A TWS order id (per API client) is not a portal order id, so an int is
        cancelled only when this Trader can name the order's client order id.
        """
        portal = self.source(cause)
        self.note_down(cause)
        self.guard(portal, deadline, f"cancel_order({order_id!r})")
        target: int | str | None = order_id.strip() if isinstance(order_id, str) else None
        if target is None:
            with self._lock:
                target = next((c for c, r in self._placed.items()
                               if r is not None and r.get("order_id") == int(order_id)), None)
        if target is None:
            target = self._tws_ref(int(order_id), deadline)
        if target is None:
            return order_result(
                success=False, order_id=int(order_id), status="NotFound",
                error=(f"{cause}; order id {order_id} is a TWS order id the Client Portal does "
                       "not know: cancel by client order id (a str) while TWS is down"))
        return {**portal_result(portal.cancel_order(target, timeout=time_left(deadline))),
                "source": "portal"}

    def _tws_ref(self, order_id: int, deadline: float) -> str | None:
        async def read() -> str | None:
            return self.tws.client_order_id_of(order_id)

        return self.ctx.run(read, deadline, f"order {order_id} client order id")


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
