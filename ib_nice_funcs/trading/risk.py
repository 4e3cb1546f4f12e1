"""Pre-trade risk checks: position, exposure, daily loss and pattern-day-trader limits.

Pure functions over a :class:`PortfolioSnapshot` the trading layer builds
from the account; nothing here talks to a broker. :func:`check_order`
returns a :class:`RiskBreach` (or None) and never raises for a breach, so the
caller decides whether to raise ``RiskLimitError`` or return
``{"success": False, ...}``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

__all__ = [
    "PDT_MAX_DAY_TRADES",
    "PDT_MIN_EQUITY_USD",
    "PDT_SEC_TYPES",
    "PortfolioSnapshot",
    "RiskBreach",
    "RiskLimits",
    "adds_risk",
    "check_order",
    "count_day_trades",
]

#: FINRA pattern-day-trader rule: a margin account under this equity...
PDT_MIN_EQUITY_USD = 25_000.0
#: ...may make at most this many day trades in any 5 business days.
PDT_MAX_DAY_TRADES = 3
#: Security types the pattern-day-trader rule applies to.
PDT_SEC_TYPES = frozenset({"STK", "OPT", "WAR"})

# Half a cent: order values come from qty * price and must not trip a limit
# they meet exactly because of float rounding.
_TOLERANCE_USD = 0.005

_SETTINGS = {
    "max_position_usd": "IB_MAX_POSITION_USD",
    "max_daily_loss_usd": "IB_MAX_DAILY_LOSS_USD",
    "max_exposure_usd": "IB_MAX_EXPOSURE_USD",
}


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    x = float(value)
    if not (x > 0) or math.isnan(x):
        raise ValueError(f"{name} must be > 0 (use math.inf for no limit), got {value!r}")
    return x


@dataclass(frozen=True)
class RiskLimits:
    """Limits every order that adds risk is checked against.

    Attributes:
        max_position_usd: Largest absolute market value of one symbol's position.
        max_daily_loss_usd: Once the day's P&L is below minus this, only
            orders that reduce positions are accepted.
        max_exposure_usd: Largest gross exposure (sum of absolute position
            values) across all symbols.
        pdt_guard: Refuse an opening order that would be a day trade beyond
            the pattern-day-trader allowance.
    """

    max_position_usd: float = 10_000.0
    max_daily_loss_usd: float = 5_000.0
    max_exposure_usd: float = 50_000.0
    pdt_guard: bool = True

    def __post_init__(self) -> None:
        for name in _SETTINGS:
            _positive(name, getattr(self, name))


@dataclass(frozen=True)
class RiskBreach:
    """An order that would break a limit.

    Attributes:
        limit: ``max_position_usd``, ``max_exposure_usd``,
            ``max_daily_loss_usd`` or ``pattern_day_trader``.
        requested: What the order would lead to (position or exposure in
            USD, the day's loss in USD, or the day-trade count).
        limit_value: The limit it breaks.
        symbol: The order's symbol.
    """

    limit: str
    requested: float
    limit_value: float
    symbol: str

    @property
    def message(self) -> str:
        """What was refused, why, and how to change the limit."""
        if self.limit == "pattern_day_trader":
            return (
                f"{self.symbol}: order refused, nothing was sent: it would be day trade "
                f"#{int(self.requested)} in 5 business days on a margin account under "
                f"${PDT_MIN_EQUITY_USD:,.0f}, and the pattern-day-trader rule allows "
                f"{int(self.limit_value)}. Wait until older day trades leave the 5-day "
                f"window, hold the position overnight, or raise the account's net "
                f"liquidation to ${PDT_MIN_EQUITY_USD:,.0f} (configure(pdt_guard=False) or "
                f"IB_NICE_FUNCS_PDT_GUARD=0 turns this check off; IB may still refuse the order)."
            )
        env = _SETTINGS.get(self.limit, "")
        how = (
            f"Change it with configure({self.limit}=...) or the {env} environment variable."
            if env
            else ""
        )
        if self.limit == "max_daily_loss_usd":
            what = (
                f"today's loss is ${self.requested:,.2f}, beyond {self.limit} "
                f"${self.limit_value:,.2f}; only orders that reduce positions are accepted "
                f"until the next session."
            )
        elif self.limit == "max_exposure_usd":
            what = (
                f"it would bring gross exposure to ${self.requested:,.2f}, above {self.limit} "
                f"${self.limit_value:,.2f}."
            )
        else:
            what = (
                f"it would bring the position to ${self.requested:,.2f}, above {self.limit} "
                f"${self.limit_value:,.2f}."
            )
        return f"{self.symbol}: order refused, nothing was sent: {what} {how}".rstrip()


@dataclass(frozen=True)
class PortfolioSnapshot:
    """The account state a risk check needs.

    Attributes:
        positions_usd: Signed market value by symbol (short is negative).
        net_liquidation: Account net liquidation value, USD.
        daily_pnl: Realized + unrealized P&L since the session start, USD.
        is_margin: A margin (not cash) account.
        day_trades_last_5_days: Day trades in the last 5 business days.
    """

    positions_usd: Mapping[str, float] = field(default_factory=dict)
    net_liquidation: float = 0.0
    daily_pnl: float = 0.0
    is_margin: bool = True
    day_trades_last_5_days: int = 0


def _side(side: object) -> str:
    s = side.strip().upper() if isinstance(side, str) else None
    if s not in ("BUY", "SELL"):
        raise ValueError(f"side must be one of BUY, SELL, got {side!r}")
    return s


def adds_risk(snapshot: PortfolioSnapshot, symbol: str, side: str, order_value_usd: float) -> bool:
    """Whether the order grows the symbol's absolute position (the orders limits apply to).

    Raises:
        ValueError: unknown side.
    """
    current = float(snapshot.positions_usd.get(symbol, 0.0))
    value = abs(float(order_value_usd))
    new = current + value if _side(side) == "BUY" else current - value
    return abs(new) > abs(current)


def check_order(
    limits: RiskLimits,
    snapshot: PortfolioSnapshot,
    symbol: str,
    side: str,
    order_value_usd: float,
    opens_day_trade: bool = False,
) -> RiskBreach | None:
    """Check one order against the limits before it is sent.

    Orders that do not increase the symbol's absolute position (a sell that
    reduces a long, a buy that covers a short) are always allowed: a limit
    must never trap an agent in a position. Orders that increase it (or flip
    it to a larger opposite position) are checked, in this order: daily loss,
    position size, gross exposure, pattern day trader.

    Args:
        limits: The limits.
        snapshot: Current positions and account state.
        symbol: Key of the symbol in ``snapshot.positions_usd``.
        side: ``BUY`` or ``SELL`` (any case).
        order_value_usd: Order value in USD (quantity x price), >= 0.
        opens_day_trade: The caller expects this position to be closed the
            same day (an intraday agent). Pass True for every opening order
            of an agent that may close intraday to stay clear of the rule.

    Returns:
        The first breach found, or None when the order may go.

    Raises:
        ValueError: unknown side, or a negative/NaN/inf order value.
    """
    s = _side(side)
    if isinstance(order_value_usd, bool) or not isinstance(order_value_usd, numbers.Real):
        raise TypeError(f"order_value_usd must be a number, got {order_value_usd!r}")
    value = float(order_value_usd)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"order_value_usd must be finite and >= 0, got {order_value_usd!r}")
    if not adds_risk(snapshot, symbol, s, value):
        return None
    current = float(snapshot.positions_usd.get(symbol, 0.0))
    new = current + value if s == "BUY" else current - value

    loss = -float(snapshot.daily_pnl)
    if loss > limits.max_daily_loss_usd:
        return RiskBreach("max_daily_loss_usd", loss, limits.max_daily_loss_usd, symbol)
    if abs(new) > limits.max_position_usd + _TOLERANCE_USD:
        return RiskBreach("max_position_usd", abs(new), limits.max_position_usd, symbol)
    gross = sum(abs(float(v)) for k, v in snapshot.positions_usd.items() if k != symbol)
    gross += abs(new)
    if gross > limits.max_exposure_usd + _TOLERANCE_USD:
        return RiskBreach("max_exposure_usd", gross, limits.max_exposure_usd, symbol)
    if (
        limits.pdt_guard
        and opens_day_trade
        and snapshot.is_margin
        and snapshot.net_liquidation < PDT_MIN_EQUITY_USD
        and snapshot.day_trades_last_5_days >= PDT_MAX_DAY_TRADES
    ):
        return RiskBreach(
            "pattern_day_trader",
            float(snapshot.day_trades_last_5_days + 1),
            float(PDT_MAX_DAY_TRADES),
            symbol,
        )
    return None


_BUY_WORDS = frozenset({"BUY", "BOT", "B"})
_SELL_WORDS = frozenset({"SELL", "SLD", "S", "SSHORT", "SHORT"})


def _fill_fields(fill: Any) -> tuple[str, int, float, datetime | date]:
    """(symbol, +1/-1, qty, time) from a tuple or a fill-like object."""
    if isinstance(fill, tuple) and not hasattr(fill, "_fields"):
        symbol, side, qty, when = fill
    else:
        symbol = fill.symbol
        side = fill.side
        qty = getattr(fill, "qty", None)
        if qty is None:
            qty = fill.quantity
        when = fill.time
    word = str(side).strip().upper()
    if word in _BUY_WORDS:
        sign = 1
    elif word in _SELL_WORDS:
        sign = -1
    else:
        raise ValueError(f"fill side must be BUY/BOT or SELL/SLD, got {side!r}")
    return str(symbol), sign, abs(float(qty)), when


def _business_days(today: date, count: int, holidays: Collection[date]) -> set[date]:
    days: set[date] = set()
    d = today
    while len(days) < count:
        if d.weekday() < 5 and d not in holidays:
            days.add(d)
        d -= timedelta(days=1)
    return days


def _local_date(when: datetime | date, tz: Any) -> date:
    if isinstance(when, datetime):
        aware = when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
        return aware.astimezone(tz).date()
    return when


def count_day_trades(
    fills: Iterable[Any],
    today: date | datetime,
    business_days: int = 5,
    *,
    tz: str = "America/New_York",
    holidays: Collection[date] = (),
) -> int:
    """Count day trades among ``fills`` in the last ``business_days`` business days.

    A day trade is opening and then closing (part of) a position in the same
    symbol on the same trading day. Counting follows FINRA's sequence rule:
    within a symbol's day, each switch from opening fills to a closing fill
    counts once (buy, buy, sell = 1; buy, sell, buy, sell = 2; buy, sell, sell = 1).
    Each symbol's day starts flat: a position carried overnight is not known
    here, so selling it and buying back the same day counts as a day trade
    (the safe direction for a guard).

    Args:
        fills: ``(symbol, side, qty, time)`` tuples, or objects with
            ``symbol``, ``side``, ``qty`` (or ``quantity``) and ``time``. Side
            is BUY/BOT or SELL/SLD; time is a datetime (naive = UTC) or a date.
        today: The last day of the window (a datetime is read in ``tz``).
        business_days: Window length; weekends (and ``holidays``) are skipped.
        tz: Time zone that defines the trading day.
        holidays: Exchange holidays to skip as well.

    Returns:
        The number of day trades in the window.
    """
    from zoneinfo import ZoneInfo

    if isinstance(business_days, bool) or not isinstance(business_days, int) or business_days < 1:
        raise ValueError(f"business_days must be a positive int, got {business_days!r}")
    zone = ZoneInfo(tz)
    window = _business_days(_local_date(today, zone), business_days, frozenset(holidays))
    by_key: dict[tuple[str, date], list[tuple[float, int, float]]] = {}
    for order, fill in enumerate(fills):
        symbol, sign, qty, when = _fill_fields(fill)
        day = _local_date(when, zone)
        if day in window and qty > 0:
            # Date-only fills sort before timed ones and among themselves by input order.
            stamp = when if isinstance(when, datetime) else datetime.min
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=timezone.utc)
            by_key.setdefault((symbol, day), []).append((stamp.timestamp(), order, sign * qty))
    total = 0
    for seq in by_key.values():
        seq.sort(key=lambda item: (item[0], item[1]))
        position = 0.0
        opened = False  # an opening fill happened since the last closing run began
        for _, _, signed in seq:
            closing = position != 0 and (position > 0) != (signed > 0)
            if closing:
                if opened:
                    total += 1
                    opened = False
                remainder = position + signed
                # Overshooting through zero opens the other side.
                if remainder != 0 and (remainder > 0) != (position > 0):
                    opened = True
                position = remainder
            else:
                position += signed
                opened = True
    return total

