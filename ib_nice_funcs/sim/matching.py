"""Paper matching engine and account book: orders in, events out, no I/O.

The engine keeps orders, positions, cash and executions for one account and
answers each call with a list of events; the TWS simulator (or a Client
Portal simulator) turns those into wire messages.

Fill rules: MKT buys at the ask and sells at the bid; LMT rests until the
opposite quote crosses the limit and then fills at that quote; STP triggers
when the last price touches the stop and fills like MKT; TRAIL keeps a stop
``trailing amount`` (or ``trailingPercent``) away from the best last price
since submission; MIDPRICE fills at the midpoint (not beyond its cap, if
one is given); MOC fills at the 16:00 ET close, LOC at the close if the close
is within its limit (``run_close`` forces the close in tests). Time in
force: DAY orders are cancelled at the end of the session they first work
in, GTD orders at their ``good_till`` time, IOC/FOK market and limit orders
cancel what does not fill at once (FOK never fills in part), GTC orders rest. Stock orders
fill in regular hours only, unless ``outsideRth`` is set on a limit order;
FX and crypto fill whenever their market is open.

Costs (documented, deterministic): stocks $0.005 per share, at least $1.00
and at most 1% of the trade value; FX 0.002% (0.2 bp) of the value, at least
$2.00; crypto 0.18% of the value, at least $1.75 and at most 1%. Every
amount is in USD: non-USD quote currencies are converted at the live FX rate.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np

from ._order_rules import SUPPORTED_ORDER_TYPES, size_from_cash, valid_price, validate
from .catalog import FX, STOCK, Instrument
from .market import PaperMarket, Quote
from .records import OPEN_STATES, Event, Fill, Position, SimOrder

__all__ = ["SimOrder", "Fill", "Position", "Event", "MatchingEngine", "commission_for",
           "SUPPORTED_ORDER_TYPES"]


def _checked(price: float | None) -> float:
    """A price the order rules required for this order type (``_order_rules._shape``
    rejects an LMT/LOC/STP LMT order without a limit price, an STP/STP LMT order
    without a stop price, a TRAIL order without one of its trailing amounts)."""
    return cast(float, price)


def commission_for(inst: Instrument, quantity: float, price: float, usd_rate: float = 1.0) -> float:
    """Commission in USD for one execution (see the module docstring)."""
    value = abs(quantity * price) * usd_rate
    if inst.sec_type == STOCK:
        return round(min(max(0.005 * abs(quantity), 1.0), 0.01 * value), 4)
    if inst.sec_type == FX:
        return round(max(0.00002 * value, 2.0), 4)
    return round(min(max(0.0018 * value, 1.75), 0.01 * value), 4)


class MatchingEngine:
    """Orders, fills, positions and cash of one paper account.

    Not thread-safe: call it from one thread (the simulator's event loop).

    Args:
        market: price source.
        account: account id; ids not starting with ``D`` are "live".
        cash: starting cash in USD.
        partial_fills: fill marketable orders in two or more pieces.
    """

    def __init__(self, market: PaperMarket, account: str = "DU1234567",
                 cash: float = 1_000_000.0, partial_fills: bool = False) -> None:
        self.market = market
        self.account = account
        self.cash = float(cash)
        self.partial_fills = partial_fills
        self.orders: dict[tuple[int, int], SimOrder] = {}
        self.positions: dict[int, Position] = {}
        self.fills: list[Fill] = []
        self.realized = 0.0
        self.order_count = 0
        self._perm = 1_000_000
        self._exec = 0

    # ------------------------------------------------------------------ helpers
    def usd_rate(self, currency: str, now: float | None = None) -> float:
        """USD value of one unit of ``currency`` at the live FX rate."""
        if currency == "USD":
            return 1.0
        for key, invert in ((f"{currency}.USD", False), (f"USD.{currency}", True)):
            try:
                px = self.market.quote(key, now).last
            except KeyError:
                continue
            return 1.0 / px if invert else px
        return 1.0

    def open_orders(self, client_id: int | None = None) -> list[SimOrder]:
        """Open orders, of one client or of all."""
        return [o for o in self.orders.values()
                if o.is_open and (client_id is None or o.client_id == client_id)]

    def completed_orders(self) -> list[SimOrder]:
        """Filled, cancelled and rejected orders, oldest first."""
        return [o for o in self.orders.values() if not o.is_open]

    def _reject(self, order: SimOrder, reason: str, now: float) -> list[Event]:
        order.status = "Cancelled"
        order.completed_at = now
        return [Event("error", order, code=201, message=f"Order rejected - reason:{reason}",
                      order_id=order.order_id, client_id=order.client_id)]

    def _market_open(self, order: SimOrder, now: float) -> bool:
        rth = not (order.outside_rth
                   and order.order_type in ("LMT", "STP", "STP LMT", "TRAIL"))
        return self.market.is_open(order.inst.key, now, use_rth=rth)

    # -------------------------------------------------------------- order entry
    def submit(self, order: SimOrder, now: float) -> list[Event]:
        """Accept (or reject, or modify) an order and match it at once.

        A placeOrder for an order id that is still open modifies that order;
        for an id already done it is rejected (error 103). An order sent with
        ``transmit=False`` is held (PreSubmitted, never matched) until an
        order of its bracket arrives with ``transmit=True``; a child waits for
        its parent's fill; children of one parent are one OCA group.
        """
        key = (order.client_id, order.order_id)
        self.order_count += 1
        old = self.orders.get(key)
        if old is not None:
            if not old.is_open:
                return [Event("error", order, code=103, message="Duplicate order id",
                              order_id=order.order_id, client_id=order.client_id)]
            return self._modify(old, order, now)
        order.submitted_at = now
        self._perm += 1
        order.perm_id = self._perm
        self.orders[key] = order
        parent = self.parent_of(order)
        if order.parent_id and (parent is None or parent.status not in OPEN_STATES + ("Filled",)):
            return self._reject(order, f"Parent order {order.parent_id} is not open "
                                       "(it was cancelled, rejected or never placed)", now)
        if not order.quantity and valid_price(order.extra.get("cashQty")):
            order.quantity = size_from_cash(self, order, now)
        problem = validate(self, order, now)
        if problem:
            return self._reject(order, problem, now)
        if not order.transmit:  # accepted, not working: PreSubmitted until transmitted
            order.status = "PreSubmitted"
            return [Event("status", order)]
        order.status = "Submitted" if self._market_open(order, now) else "PreSubmitted"
        return self._release(order, now)

    def parent_of(self, order: SimOrder) -> SimOrder | None:
        """The bracket parent of ``order`` (None for a standalone order)."""
        return self.orders.get((order.client_id, order.parent_id)) if order.parent_id else None

    def children_of(self, order: SimOrder) -> list[SimOrder]:
        """Orders attached to ``order`` (its bracket children)."""
        return [o for o in self.orders.values()
                if o.parent_id == order.order_id and o.client_id == order.client_id]

    def _release(self, order: SimOrder, now: float) -> list[Event]:
        """Transmit ``order`` with its whole bracket (parent first, then children)."""
        root = self.parent_of(order) or order
        family = [root] + self.children_of(root)
        events: list[Event] = []
        for o in family:
            if o.is_open and (o is order or not o.transmit):
                o.transmit = True
                events.append(Event("status", o))
        for o in family:
            events += self._match_and_report(o, now)
        return events

    def _match_and_report(self, order: SimOrder, now: float) -> list[Event]:
        """Match ``order``; report a status change that matching caused without a fill."""
        was = order.status
        events = self._match(order, now)
        if order.is_open and order.status != was:
            events.append(Event("status", order))
        return events

    def commission(self, inst: Instrument, quantity: float, price: float,
                   now: float | None = None) -> float:
        """Commission in USD of trading ``quantity`` at ``price`` (see the module docstring)."""
        return commission_for(inst, quantity, price, self.usd_rate(inst.currency, now))

    def position_quantity(self, inst: Instrument) -> float:
        """Signed position in ``inst`` (0.0 if none)."""
        pos = self.positions.get(inst.con_id)
        return pos.quantity if pos is not None else 0.0

    def _modify(self, old: SimOrder, new: SimOrder, now: float) -> list[Event]:
        if new.quantity < old.filled:
            return [Event("error", old, code=201, message="Order rejected - reason:The new "
                          "quantity is below the filled quantity", order_id=old.order_id,
                          client_id=old.client_id)]
        for name in ("quantity", "lmt_price", "aux_price", "trailing_percent", "tif",
                     "order_ref", "outside_rth", "trail_stop_price", "oca_group"):
            setattr(old, name, getattr(new, name))
        old.extra.update(new.extra)
        if new.transmit and not old.transmit:
            return self._release(old, now)
        return [Event("status", old)] + self._match(old, now)

    def cancel(self, client_id: int, order_id: int, now: float) -> list[Event]:
        """Cancel one open order (error 10147 if it is not open)."""
        order = self.orders.get((client_id, order_id))
        if order is None or not order.is_open:
            return [Event("error", None, code=10147, message=f"OrderId {order_id} that needs "
                          "to be cancelled is not found.", order_id=order_id,
                          client_id=client_id)]
        return self._cancel(order, now)

    def _cancel(self, order: SimOrder, now: float) -> list[Event]:
        order.status = "Cancelled"
        order.completed_at = now
        events = [Event("status", order),
                  Event("error", order, code=202, message="Order Canceled - reason:",
                        order_id=order.order_id, client_id=order.client_id)]
        if order.filled == 0:  # an unfilled parent takes its children with it
            for child in self.children_of(order):
                if child.is_open:
                    events += self._cancel(child, now)
        return events

    def cancel_all(self, now: float) -> list[Event]:
        """reqGlobalCancel: cancel every open order of every client."""
        events: list[Event] = []
        for order in self.open_orders():
            if order.is_open:  # a parent's cancel may already have taken its children
                events += self._cancel(order, now)
        return events

    # ----------------------------------------------------------------- matching
    def on_time(self, now: float) -> list[Event]:
        """Re-check every open order against the quotes at ``now``."""
        events: list[Event] = []
        for order in self.open_orders():
            events += self._match_and_report(order, now)
            if order.is_open and self._day_is_over(order, now):
                events += self._cancel(order, now)
        return events

    def run_close(self, now: float) -> list[Event]:
        """Fill MOC and marketable LOC orders at the current (closing) price."""
        events: list[Event] = []
        for order in self.open_orders():
            if order.order_type not in ("MOC", "LOC"):
                continue
            close = self.market.quote(order.inst.key, now).last
            if order.order_type == "LOC" and (close - _checked(order.lmt_price)) * order.sign > 0:
                events += self._cancel(order, now)
                continue
            events += self._execute(order, order.remaining, close, now)
        return events

    def _match(self, order: SimOrder, now: float) -> list[Event]:
        if not order.is_open or not order.transmit:
            return []
        parent = self.parent_of(order)
        if parent is not None and parent.status != "Filled":
            order.status = "PreSubmitted"
            return []
        at_close = order.order_type in ("MOC", "LOC")  # they wait for the close, not the open
        if not at_close and not self._market_open(order, now):
            order.status = "PreSubmitted"
            return []
        order.status = "Submitted"
        q = self.market.quote(order.inst.key, now)
        price = self._fill_price(order, q, now)
        # IOC / FOK: what does not fill the moment the order works is cancelled.
        immediate = order.tif in ("IOC", "FOK") and order.order_type in ("MKT", "LMT",
                                                                         "MIDPRICE")
        if price is None:
            return self._cancel(order, now) if immediate else []
        qty = order.remaining
        if self.partial_fills and order.tif != "FOK" and order.filled == 0 \
                and qty > order.inst.size_increment:
            half = math.floor(qty / 2 / order.inst.size_increment) * order.inst.size_increment
            qty = round(half, 10) or qty
        events = self._execute(order, qty, price, now)
        if immediate and order.is_open:
            events += self._cancel(order, now)
        return events

    def _day_is_over(self, order: SimOrder, now: float) -> bool:
        """A DAY order lives until the end of the session it first works in; a GTD
        order until its ``good_till`` time (UTC epoch seconds in ``extra``)."""
        if order.tif == "GTD" and order.extra.get("good_till") is not None:
            return now >= order.extra["good_till"]
        if order.tif not in ("DAY", "") or not order.submitted_at:
            return False
        rth = order.order_type in ("MOC", "LOC") or not (
            order.outside_rth and order.order_type in ("LMT", "STP", "STP LMT", "TRAIL"))
        sessions = self.market.sessions(order.inst.key, order.submitted_at,
                                        order.submitted_at + 8 * 86400, use_rth=rth)
        first = next((s for s in sessions if s.end > order.submitted_at), None)
        return first is not None and now >= first.end

    def _fill_price(self, order: SimOrder, q: Quote, now: float) -> float | None:
        kind, buy = order.order_type, order.action == "BUY"
        touch = q.ask if buy else q.bid
        if kind == "MKT":
            return touch
        if kind == "LMT":
            limit = _checked(order.lmt_price)
            ok = touch <= limit if buy else touch >= limit
            return touch if ok else None
        if kind == "MIDPRICE":
            mid = self.market._round(order.inst, np.array([q.mid]))[0]
            if valid_price(order.lmt_price) and (mid - order.lmt_price) * order.sign > 0:
                return None
            return float(mid)
        if kind == "STP":
            stop = _checked(order.aux_price)
            hit = q.last >= stop if buy else q.last <= stop
            return touch if hit else None
        if kind == "STP LMT":  # a stop that, once touched, rests as a limit order
            stop, limit = _checked(order.aux_price), _checked(order.lmt_price)
            if not order.extra.get("_triggered"):
                if not (q.last >= stop if buy else q.last <= stop):
                    return None
                order.extra["_triggered"] = True
            ok = touch <= limit if buy else touch >= limit
            return touch if ok else None
        if kind == "TRAIL":
            best = order._best
            best = q.last if best is None else (min(best, q.last) if buy else max(best, q.last))
            order._best = best
            if valid_price(order.trailing_percent):
                offset = best * order.trailing_percent / 100.0
            else:
                offset = _checked(order.aux_price)
            stop = best + offset if buy else best - offset
            if valid_price(order.trail_stop_price) and order.filled == 0 and \
                    order.extra.get("_trail_init") is None:
                stop = order.trail_stop_price
                order.extra["_trail_init"] = True
            order.trail_stop_price = float(self.market._round(order.inst,
                                                               np.array([stop]))[0])
            hit = q.last >= order.trail_stop_price if buy else q.last <= order.trail_stop_price
            return touch if hit else None
        if kind in ("MOC", "LOC"):
            sess = self.market.last_sessions(order.inst.key, now, 1, use_rth=True)
            if sess and order.submitted_at < sess[-1].end <= now:
                close = self.market.quote(order.inst.key, sess[-1].end - 1).last
                if kind == "LOC" and (close - _checked(order.lmt_price)) * order.sign > 0:
                    return None
                return close
            return None
        return None

    def _execute(self, order: SimOrder, qty: float, price: float, now: float) -> list[Event]:
        inst = order.inst
        rate = self.usd_rate(inst.currency, now)
        commission = commission_for(inst, qty, price, rate)
        pos = self.positions.setdefault(inst.con_id, Position(inst))
        signed = qty * order.sign
        realized = 0.0
        if pos.quantity and (pos.quantity > 0) != (signed > 0):
            closing = min(abs(signed), abs(pos.quantity))
            realized = (price - pos.avg_cost) * closing * (1 if pos.quantity > 0 else -1) * rate
            realized -= commission
        new_qty = round(pos.quantity + signed, 10)
        if new_qty == 0:
            pos.avg_cost = 0.0
        elif pos.quantity == 0 or (pos.quantity > 0) == (signed > 0):
            total = pos.avg_cost * pos.quantity + price * signed + commission / rate * order.sign
            pos.avg_cost = total / new_qty
        elif (new_qty > 0) != (pos.quantity > 0):
            pos.avg_cost = price
        pos.quantity = new_qty
        pos.realized += realized
        self.realized += realized
        self.cash -= signed * price * rate + commission
        prev = order.filled
        order.filled = round(prev + qty, 10)
        order.avg_fill_price = (order.avg_fill_price * prev + price * qty) / order.filled
        order.last_fill_price = price
        if order.remaining <= 1e-12:
            order.status = "Filled"
            order.completed_at = now
        self._exec += 1
        fill = Fill(exec_id=f"{order.perm_id:08x}.{self._exec:08x}.01.01", order=order,
                    time=now, shares=qty, price=price, cum_qty=order.filled,
                    avg_price=order.avg_fill_price, commission=commission,
                    realized_pnl=realized if realized else 0.0)
        self.fills.append(fill)
        events = [Event("fill", order, fill=fill), Event("status", order),
                  Event("account", order)]
        events += self._one_cancels_all(order, qty, now)
        if order.status == "Filled":  # the bracket's children start working
            for child in self.children_of(order):
                events += self._match_and_report(child, now)
        return events

    def _one_cancels_all(self, order: SimOrder, qty: float, now: float) -> list[Event]:
        """After ``qty`` of ``order`` filled: cancel (type 1) or reduce its OCA siblings."""
        def group(o: SimOrder) -> tuple:
            if o.oca_group:
                return ("oca", o.client_id, o.oca_group)
            return ("bracket", o.client_id, o.parent_id) if o.parent_id else ()

        key = group(order)
        if not key:
            return []
        events: list[Event] = []
        for other in self.open_orders():
            if other is order or group(other) != key:
                continue
            if order.oca_type == 1 or order.status == "Filled":
                events += self._cancel(other, now)
            else:
                other.quantity = round(other.quantity - qty, 10)
                if other.remaining <= 1e-12:
                    events += self._cancel(other, now)
                else:
                    events.append(Event("status", other))
        return events

    # ------------------------------------------------------------------ account
    def portfolio(self, now: float | None = None) -> list[tuple[Position, float, float, float]]:
        """(position, market price, market value USD, unrealized P&L USD) per position."""
        out = []
        for pos in self.positions.values():
            if pos.quantity == 0 and pos.realized == 0:
                continue
            px = self.market.quote(pos.inst.key, now).last
            rate = self.usd_rate(pos.inst.currency, now)
            value = pos.quantity * px * rate
            out.append((pos, px, value, (px - pos.avg_cost) * pos.quantity * rate))
        return out

    def values(self, now: float | None = None) -> dict[str, float]:
        """Account values in USD (IB tag -> value)."""
        rows = self.portfolio(now)
        gross = sum(abs(v) for _, _, v, _ in rows)
        net_value = sum(v for _, _, v, _ in rows)
        unreal = sum(u for *_, u in rows)
        netliq = self.cash + net_value
        margin = 0.25 * gross
        available = netliq - margin
        live = not self.account.startswith("D")
        return {
            "NetLiquidation": netliq, "TotalCashValue": self.cash, "CashBalance": self.cash,
            "SettledCash": self.cash, "AccruedCash": 0.0, "EquityWithLoanValue": netliq,
            "GrossPositionValue": gross, "StockMarketValue": net_value,
            "InitMarginReq": margin, "MaintMarginReq": margin, "FullInitMarginReq": margin,
            "FullMaintMarginReq": margin, "AvailableFunds": available,
            "FullAvailableFunds": available, "ExcessLiquidity": available,
            "FullExcessLiquidity": available, "BuyingPower": max(0.0, 4.0 * available),
            "UnrealizedPnL": unreal, "RealizedPnL": self.realized,
            "Cushion": available / netliq if netliq else 0.0,
            "DayTradesRemaining": -1.0 if netliq >= 25_000 else 3.0,
            "Leverage": gross / netliq if netliq else 0.0, "_live": 1.0 if live else 0.0,
        }
