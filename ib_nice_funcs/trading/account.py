"""Account state without I/O: the live-account guard, account values, daily P&L.

These functions read ib_async objects (``AccountValue``, ``Position``,
``PortfolioItem``, ``Fill``) or plain values and never talk to the gateway,
so the risk snapshot the trading layer builds is tested on its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from ..errors import ConfigurationError, LiveTradingDisabledError
from ..fleet.state import WorkingOrder, with_working_orders
from .risk import PDT_MAX_DAY_TRADES, PortfolioSnapshot, count_day_trades

__all__ = [
    "DailyBaseline",
    "account_number",
    "build_snapshot",
    "daily_pnl",
    "check_live_allowed",
    "day_trades_used",
    "exchange_rates",
    "pick_account",
    "signed_values_usd",
    "trading_day",
]

#: US equities define the trading day; P&L "since session start" resets at
#: New York midnight.
_TRADING_TZ = ZoneInfo("America/New_York")
#: Currencies IB reports account totals in; BASE is the account's base currency.
_TOTAL_CURRENCIES = ("USD", "BASE", "")


def trading_day(now: datetime | float | None = None) -> date:
    """The New York calendar date of ``now``: a datetime, UTC epoch seconds, or
    None for the current time."""
    if isinstance(now, (int, float)):
        now = datetime.fromtimestamp(float(now), timezone.utc)
    moment = now or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(_TRADING_TZ).date()


def pick_account(configured: str | None, managed: Sequence[str]) -> str:
    """The account orders go to.

    Args:
        configured: The ``account`` setting (``IB_ACCOUNT``), or None.
        managed: The accounts the gateway manages for this login.

    Raises:
        ConfigurationError: no account is known, or several are and none is
            configured (IB needs to be told which one to trade).
    """
    if configured:
        return configured
    accounts = [a for a in managed if a]
    if len(accounts) == 1:
        return accounts[0]
    if not accounts:
        raise ConfigurationError(
            "the gateway reported no managed account; check that TWS / IB Gateway is logged "
            "in, or set IB_ACCOUNT"
        )
    raise ConfigurationError(
        f"the login manages several accounts ({', '.join(accounts)}); choose one with "
        "IB_ACCOUNT=... or configure(account=...)"
    )


def check_live_allowed(account: str, allow_live: bool) -> None:
    """Refuse orders to a live (non-paper) account unless live trading is switched on.

    IB paper account ids start with ``D`` (``DU1234567``, ``DF...``).

    Raises:
        LiveTradingDisabledError: ``account`` is live and ``allow_live`` is off.
    """
    if account.startswith("D") or allow_live:
        return
    raise LiveTradingDisabledError(
        f"account {account} is a live account (paper account ids start with 'D'); orders "
        "are refused and nothing was sent. To trade live on purpose set "
        "IB_NICE_FUNCS_ALLOW_LIVE=1 or call configure(allow_live=True)"
    )


def account_number(values: Iterable[Any], tag: str, account: str | None = None) -> float | None:
    """One account value (``NetLiquidation``, ``AvailableFunds``...) as a float.

    Args:
        values: ib_async ``AccountValue`` items (``tag``, ``value``,
            ``currency``, ``account``).
        tag: IB's tag.
        account: Keep only this account's values (None: any).

    Returns:
        The value in USD / the base currency, or None when IB sent none.
    """
    best: tuple[int, float] | None = None
    for item in values:
        if item.tag != tag or (account and item.account and item.account != account):
            continue
        currency = (item.currency or "").upper()
        if currency not in _TOTAL_CURRENCIES:
            continue
        try:
            number = float(item.value)
        except (TypeError, ValueError):
            continue
        if not math.isfinite(number):
            continue
        rank = _TOTAL_CURRENCIES.index(currency)
        if best is None or rank < best[0]:
            best = (rank, number)
    return None if best is None else best[1]


def exchange_rates(values: Iterable[Any], account: str | None = None) -> dict[str, float]:
    """Currency -> USD per unit, from IB's ``ExchangeRate`` account values (USD base)."""
    rates = {"USD": 1.0}
    for item in values:
        if item.tag != "ExchangeRate" or (account and item.account and item.account != account):
            continue
        try:
            rate = float(item.value)
        except (TypeError, ValueError):
            continue
        if rate > 0 and item.currency and item.currency != "BASE":
            rates[item.currency.upper()] = rate
    return rates


@dataclass
class DailyBaseline:
    """Net liquidation at the first look of each trading day, for daily P&L.

    Daily P&L (realized + unrealized since the session start) is the change
    in net liquidation since that first look. IB's own ``DailyPnL`` is
    preferred when the gateway sends it (see :meth:`pnl`).
    """

    day: date | None = None
    start_value: float | None = None

    def pnl(self, net_liquidation: float, today: date, ib_daily_pnl: float | None = None) -> float:
        """Today's P&L in USD; the first call of a day records the baseline.

        Args:
            net_liquidation: Current net liquidation.
            today: The trading day (see :func:`trading_day`).
            ib_daily_pnl: IB's ``dailyPnL`` when subscribed and finite.
        """
        if self.day != today or self.start_value is None:
            self.day, self.start_value = today, float(net_liquidation)
        if ib_daily_pnl is not None and math.isfinite(ib_daily_pnl):
            return float(ib_daily_pnl)
        return float(net_liquidation) - self.start_value


def signed_values_usd(
    rows: Iterable[tuple[str, float, float, float]],
) -> dict[str, float]:
    """Symbol -> signed USD value, summing rows ``(symbol, quantity, price, usd_per_unit)``."""
    out: dict[str, float] = {}
    for symbol, quantity, price, rate in rows:
        out[symbol] = out.get(symbol, 0.0) + float(quantity) * float(price) * float(rate)
    return out


def day_trades_used(
    fill_rows: Iterable[tuple[str, str, float, datetime]],
    today: date,
    values: Mapping[str, float | None],
) -> int:
    """Day trades in the last 5 business days, as well as we can tell.

    The fills this session has seen are counted with
    :func:`ib_nice_funcs.trading.risk.count_day_trades`; IB's
    ``DayTradesRemaining`` (when the account reports it, -1 meaning
    unlimited) covers the days before. The larger of the two is used.
    """
    counted = count_day_trades(list(fill_rows), today)
    remaining = values.get("DayTradesRemaining")
    if remaining is not None and remaining >= 0:
        counted = max(counted, PDT_MAX_DAY_TRADES - int(remaining))
    return counted


def daily_pnl(baseline_pnl: float, ib_daily_pnl: float | None,
              previous_equity: float | None, equity: float | None) -> float:
    """The daily P&L the loss limit sees, from either venue's account values.

    ``baseline_pnl`` comes from the fleet's one day-start value
    (:class:`DailyBaseline`); when IB sends no ``dailyPnL`` of its own, IB's
    start-of-day reference (``PreviousDayEquityWithLoanValue`` against
    ``EquityWithLoanValue``) also counts, since it survives an agent restart
    mid-day: whichever shows the larger loss wins.
    """
    if ib_daily_pnl is None and previous_equity and equity is not None:
        return min(baseline_pnl, equity - previous_equity)
    return baseline_pnl


def build_snapshot(
    rows: Iterable[tuple[str, float, float, float]],
    *,
    net_liquidation: float,
    daily: float,
    day_trades: int,
    working: Iterable[WorkingOrder] = (),
) -> PortfolioSnapshot:
    """The risk snapshot from either venue's data (the one place it is built).

    Args:
        rows: ``(symbol, quantity, price, usd_per_unit)`` per position.
        net_liquidation: The account's net liquidation in USD.
        daily: Today's P&L (see :func:`daily_pnl`).
        day_trades: Day trades used in the last five business days.
        working: The fleet's other processes' working opening orders,
            counted as if they filled.
    """
    return PortfolioSnapshot(
        positions_usd=with_working_orders(signed_values_usd(rows), working),
        net_liquidation=float(net_liquidation),
        daily_pnl=daily,
        is_margin=True,
        day_trades_last_5_days=day_trades,
    )
