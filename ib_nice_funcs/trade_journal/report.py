"""Per-symbol and per-agent numbers from journal rows (pure: rows in, dicts out).

Realized P&L uses the average-cost method (IB's own): a fill that reduces a
position realizes ``quantity x (price - average cost)`` for a long (the
opposite for a short); commissions are reported apart and subtracted in
``net_pnl``. P&L is computed per (agent, symbol), so two agents trading one
symbol each see their own. Slippage is quantity-weighted over fills that have
an arrival price; positive = adverse. Fill rate = orders with any fill /
orders sent (TWS or Client Portal). Refusals count orders refused before
sending and sent orders that IB rejected or that failed (timeout, lost
connection), by reason code.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, TypedDict

__all__ = ["GroupStats", "MonthCosts", "Report", "build_report", "realized_pnl", "month_costs"]


class GroupStats(TypedDict):
    """Numbers for one symbol or one agent."""

    key: str
    orders_sent: int
    orders_filled: int
    fill_rate: float | None
    fills: int
    bought_qty: float
    sold_qty: float
    position: float
    realized_pnl: float
    commissions: float
    net_pnl: float
    avg_slippage_bps: float | None
    worst_slippage_bps: float | None
    refusals: dict[str, int]


class MonthCosts(TypedDict):
    """What the month's trading cost at IB: paid (journal) and by the published schedule."""

    month: str
    orders: int
    commissions_paid: float
    commissions_schedule: float
    market_data: float
    schedule_date: str


class Report(TypedDict):
    """``report``'s answer: groups, refusals, the month's costs and what could not be read."""

    since: float | None
    agent: str | None
    by_symbol: list[GroupStats]
    by_agent: list[GroupStats]
    refusals: dict[str, int]
    month_costs: MonthCosts | None
    unreadable: list[str]


def realized_pnl(fills: Iterable[tuple[str, float, float]]) -> tuple[float, float]:
    """Average-cost realized P&L of one instrument's fills ``(side, quantity, price)`` in order.

    Returns:
        ``(realized, position)``.
    """
    position = cost = realized = 0.0
    for side, quantity, price in fills:
        delta = quantity if side.upper() in ("BUY", "BOT") else -quantity
        if position == 0 or (position > 0) == (delta > 0):
            total = position + delta
            cost = (position * cost + delta * price) / total if total else 0.0
            position = total
            continue
        closed = min(abs(delta), abs(position))
        realized += closed * (price - cost) * (1 if position > 0 else -1)
        position += delta
        if abs(position) < 1e-12:
            position, cost = 0.0, 0.0
        elif (position > 0) == (delta > 0):  # flipped through zero: the rest opens at price
            cost = price
    return realized, position


def _stats(key: str, rows: Sequence[Mapping[str, Any]]) -> GroupStats:
    sent_orders = {r["client_order_id"] for r in rows if r["kind"] in ("sent", "failover")}
    fills = [r for r in rows if r["kind"] == "fill"]
    filled_orders = {r["client_order_id"] for r in fills if (r["quantity"] or 0) > 0}
    by_instrument: dict[tuple[Any, Any], list[tuple[str, float, float]]] = defaultdict(list)
    for r in sorted(fills, key=lambda r: (r.get("fill_time") or r["ts"], r["ts"])):
        by_instrument[(r["agent"], r["symbol"])].append(
            (r["side"], float(r["quantity"]), float(r["price"])))
    realized = position = 0.0
    for series in by_instrument.values():
        got, pos = realized_pnl(series)
        realized += got
        position += pos
    commissions = sum(float(r["commission"] or 0.0) for r in rows if r["kind"] == "commission")
    weighted = [(float(r["slippage_bps"]), float(r["quantity"])) for r in fills
                if _number(r.get("slippage_bps")) is not None]
    weight = sum(q for _, q in weighted)
    refusals = _refusals(rows)
    return GroupStats(
        key=str(key),
        orders_sent=len(sent_orders),
        orders_filled=len(filled_orders & sent_orders) if sent_orders else len(filled_orders),
        fill_rate=(len(filled_orders & sent_orders) / len(sent_orders)) if sent_orders else None,
        fills=len(fills),
        bought_qty=sum(float(r["quantity"]) for r in fills if r["side"] == "BUY"),
        sold_qty=sum(float(r["quantity"]) for r in fills if r["side"] == "SELL"),
        position=position,
        realized_pnl=realized,
        commissions=commissions,
        net_pnl=realized - commissions,
        avg_slippage_bps=(sum(s * q for s, q in weighted) / weight) if weight else None,
        worst_slippage_bps=max((s for s, _ in weighted), default=None),
        refusals=refusals,
    )


def _refusals(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Orders refused before sending, and sent orders IB rejected or that failed, by reason."""
    counts = Counter(r["reason"] or "unknown" for r in rows
                     if r["kind"] == "refused" or (r["kind"] == "status" and r.get("reason")))
    return dict(sorted(counts.items()))


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _group(rows: Sequence[Mapping[str, Any]], field: str) -> list[GroupStats]:
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        if r.get(field):
            groups[r[field]].append(r)
    return [_stats(key, groups[key]) for key in sorted(groups)]


def month_costs(rows: Sequence[Mapping[str, Any]], now: float) -> MonthCosts:
    """The calendar month (UTC) of ``now``: commissions paid, by the schedule, and market data.

    The schedule's figure charges each filled order once at its total
    quantity and average price (IBKR Pro fixed); market data is the cheapest
    plan for the symbols traded, with the commission waiver applied.
    """
    from ..costs import SCHEDULE_DATE, commission_usd, plan_market_data
    from ..symbols import parse_symbol

    month = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m")
    in_month = [r for r in rows
                if datetime.fromtimestamp(r["ts"], timezone.utc).strftime("%Y-%m") == month]
    orders: dict[Any, list[Mapping[str, Any]]] = defaultdict(list)
    for r in in_month:
        if r["kind"] == "fill":
            orders[r["client_order_id"] or r["exec_id"]].append(r)
    schedule = 0.0
    symbols: set[str] = set()
    sec_types = {"stock": "STK", "fx": "CASH", "crypto": "CRYPTO"}
    for fills in orders.values():
        qty = sum(float(f["quantity"]) for f in fills)
        if qty <= 0:
            continue
        avg = sum(float(f["quantity"]) * float(f["price"]) for f in fills) / qty
        symbol = fills[0]["symbol"]
        try:
            sec_type = sec_types.get(parse_symbol(symbol).asset_class, "STK")
        except (TypeError, ValueError):
            sec_type = "STK"
        schedule += commission_usd(sec_type, qty, avg)
        symbols.add(symbol)
    paid = sum(float(r["commission"] or 0.0) for r in in_month if r["kind"] == "commission")
    try:
        data = plan_market_data(sorted(symbols), (), False, paid).total
    except ValueError:
        data = float("nan")
    return MonthCosts(month=month, orders=len(orders), commissions_paid=round(paid, 2),
                      commissions_schedule=round(schedule, 2), market_data=round(data, 2),
                      schedule_date=SCHEDULE_DATE)


def build_report(
    rows: Sequence[Mapping[str, Any]], now: float, *, since: float | None = None,
    agent: str | None = None, unreadable: Iterable[str] = (),
    month_rows: Sequence[Mapping[str, Any]] | None = None,
) -> Report:
    """The report of ``rows`` (already filtered by ``since`` / ``agent``).

    ``month_rows``: the rows the month's costs come from (default ``rows``;
    pass the whole month's when ``since`` cuts it).
    """
    rows = list(rows)
    month = rows if month_rows is None else list(month_rows)
    return Report(
        since=since, agent=agent,
        by_symbol=_group(rows, "symbol"),
        by_agent=_group(rows, "agent"),
        refusals=_refusals(rows),
        month_costs=month_costs(month, now) if month else None,
        unreadable=list(unreadable),
    )
