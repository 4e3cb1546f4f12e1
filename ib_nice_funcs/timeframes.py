"""Timeframes, IB duration strings and request chunking.

Everything here is plain arithmetic on the standard library: no pandas, no
ib_async, no sockets. The IB adapter asks :func:`plan_chunks` how to split a
range into requests and a :class:`~ib_nice_funcs.pacing.PacingBudget` (kept
in :mod:`ib_nice_funcs.pacing`, re-exported here) how long to wait before each.

Timeframe spellings: the canonical names in :data:`VALID_TIMEFRAMES`; hours,
days and weeks in any case (``1H``, ``4H``, ``1D``, ``1W``); minutes only with
a lowercase ``m`` because nice_funcs agents write ``1M`` for one *month*
(HyperLiquid's ``1month``). Two data-vendor spellings are accepted as
aliases: ``60m`` (Yahoo's hour) -> ``1h`` and ``1wk`` -> ``1w``.

The agents' other bar sizes (:data:`DERIVED_TIMEFRAMES`: ``6h 8h 12h 3d
1M``) have no bar size of their own at every source: they are fetched as a
finer native timeframe (:attr:`Timeframe.base`) and resampled
(:attr:`Timeframe.resample_rule`) by the Client; sources only ever see the
native ones.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ._numbers import positive_number
from .pacing import Booking, PacingBudget

__all__ = [
    "DERIVED_TIMEFRAMES",
    "VALID_TIMEFRAMES",
    "MAX_REQUESTS_PER_PLAN",
    "Booking",
    "Chunk",
    "PacingBudget",
    "check_days_back",
    "Timeframe",
    "days_back_range",
    "days_for_bars",
    "ib_duration",
    "parse_timeframe",
    "plan_chunks",
]

_DAY = 86_400
_WEEK = 7 * _DAY
# The old IB "historical data limitations" table gives, per duration, the bar
# sizes it accepts: 1 D for 1 min, 2 D for 2 mins, 1 W for 3 mins and up,
# 1 M for 30 mins and up, 1 Y for 1 day and up. Chunks stay at those bounds
# (15 mins at 1 W although ib_facts.md allows ~1 M) and a month is counted as
# 30 days so a chunk never reaches a 31-day calendar month.
_MONTH = 30 * _DAY
_YEAR = 365 * _DAY


@dataclass(frozen=True)
class Timeframe:
    """One bar size, as every source spells it.

    Attributes:
        name: Canonical name (``1m``, ``4h``, ``1d``...).
        seconds: Bar length in seconds.
        ib_bar_size: IB's exact ``barSizeSetting`` string (``1 min``, ``2 mins``,
            ``1 hour``, ``4 hours``, ``1 day``, ``1 week``).
        yahoo_interval: The Yahoo interval to fetch (``1m``, ``60m``, ``1wk``...).
        yahoo_resample: pandas rule to resample the fetched bars with when
            Yahoo has no such interval (``3min``, ``2h``, ``4h``), else None.
        yahoo_max_days: How far back Yahoo serves ``yahoo_interval`` (1m: 30
            days; 2m-30m: 60 days; 60m: 730 days), None when unlimited. These
            are yfinance's own limits (``yfinance/scrapers/history.py``).
        yahoo_request_days: Largest span of one Yahoo request (1m: 7 days), None
            when one request may cover ``yahoo_max_days``.
        max_chunk_seconds: Largest range asked of IB in one historical request.
        base: For a derived timeframe, the native one fetched instead; None
            for a native timeframe.
        resample_rule: pandas rule turning ``base`` bars into these (bins
            anchored at the Unix epoch, months at their first day).
    """

    name: str
    seconds: int
    ib_bar_size: str
    yahoo_interval: str
    yahoo_resample: str | None
    yahoo_max_days: float | None
    yahoo_request_days: float | None
    max_chunk_seconds: int
    base: str | None = None
    resample_rule: str | None = None

    @property
    def max_days_back(self) -> float:
        """The longest ``days_back`` accepted: :data:`MAX_REQUESTS_PER_PLAN` chunks.

        1m-15m: 420 days; 30m-4h: 1,800 days; 1d and 1w: 21,900 days (60 years).
        """
        return MAX_REQUESTS_PER_PLAN * self.max_chunk_seconds / _DAY


#: The most historical requests one download may plan: IB's allowance for ten
#: minutes (60). A longer range could only be served by waiting out whole
#: pacing windows, so it is refused up front (see :func:`check_days_back`).
MAX_REQUESTS_PER_PLAN = 60

_TABLE: tuple[Timeframe, ...] = (
    # IB serves a week of 1-minute bars in one request; the strict 15 s / 6-in-2 s
    # pacing targets bars of 30 s or less, and a week per request keeps 10,000
    # bars to one or two requests instead of a burst of seven.
    Timeframe("1m", 60, "1 min", "1m", None, 30, 7, _WEEK),
    Timeframe("2m", 120, "2 mins", "2m", None, 60, None, _WEEK),
    # Yahoo has no 3m: fetch 1m (so 1m's 30-day/7-day limits apply) and resample.
    Timeframe("3m", 180, "3 mins", "1m", "3min", 30, 7, _WEEK),
    Timeframe("5m", 300, "5 mins", "5m", None, 60, None, _WEEK),
    Timeframe("15m", 900, "15 mins", "15m", None, 60, None, _WEEK),
    Timeframe("30m", 1800, "30 mins", "30m", None, 60, None, _MONTH),
    Timeframe("1h", 3600, "1 hour", "60m", None, 730, None, _MONTH),
    Timeframe("2h", 7200, "2 hours", "60m", "2h", 730, None, _MONTH),
    Timeframe("4h", 14400, "4 hours", "60m", "4h", 730, None, _MONTH),
    Timeframe("1d", _DAY, "1 day", "1d", None, None, None, _YEAR),
    Timeframe("1w", _WEEK, "1 week", "1wk", None, None, None, _YEAR),
)
_BY_NAME: dict[str, Timeframe] = {tf.name: tf for tf in _TABLE}

#: Canonical timeframe names, shortest first.
VALID_TIMEFRAMES: tuple[str, ...] = tuple(tf.name for tf in _TABLE)


def _derived(name: str, seconds: int, base: str, rule: str) -> Timeframe:
    return dataclasses.replace(_BY_NAME[base], name=name, seconds=seconds, base=base,
                               resample_rule=rule)


_DERIVED_TABLE: tuple[Timeframe, ...] = (
    _derived("6h", 6 * 3600, "2h", "6h"),
    _derived("8h", 8 * 3600, "4h", "8h"),
    _derived("12h", 12 * 3600, "4h", "12h"),
    _derived("3d", 3 * _DAY, "1d", "72h"),
    # A month counts as 30 days for windows and caches; its bins are calendar months.
    _derived("1M", _MONTH, "1d", "MS"),
)
#: The agents' bar sizes that are resampled from a finer native one.
DERIVED_TIMEFRAMES: tuple[str, ...] = tuple(tf.name for tf in _DERIVED_TABLE)
_BY_NAME.update({tf.name: tf for tf in _DERIVED_TABLE})

_ALIASES = {"60m": "1h", "1wk": "1w", "1month": "1M", "1mo": "1M"}
_TF_RE = re.compile(r"^(\d+)\s*([a-zA-Z]+)$")
_VALID_TEXT = (
    ", ".join(VALID_TIMEFRAMES + DERIVED_TIMEFRAMES)
    + " (hours, days and weeks in any case: 1H, 4H, 1D, 1W; 1M or 1month is a month)"
)


def parse_timeframe(text: str | Timeframe) -> Timeframe:
    """Parse a timeframe as agents write it.

    Args:
        text: ``1m 2m 3m 5m 15m 30m 1h 2h 4h 1d 1w`` (``H``, ``D``, ``W`` in any
            case), the aliases ``60m`` and ``1wk``, or a :class:`Timeframe`.

    Returns:
        The :class:`Timeframe`.

    Raises:
        TypeError: ``text`` is not a str.
        ValueError: unknown timeframe; the message lists the valid ones.
    """
    if isinstance(text, Timeframe):
        return text
    if not isinstance(text, str):
        raise TypeError(
            f"timeframe must be a str such as '1h', got {type(text).__name__} {text!r}; "
            f"valid timeframes: {_VALID_TEXT}"
        )
    s = text.strip()
    m = _TF_RE.match(s)
    if m:
        unit = m.group(2)
        # 'm' is minutes and 'M' months (the agents' convention); the other
        # units in any case.
        name = f"{int(m.group(1))}{unit if unit in ('m', 'M') else unit.lower()}"
        name = _ALIASES.get(name, name)
        tf = _BY_NAME.get(name)
        if tf is not None:
            return tf
    raise ValueError(f"unknown timeframe {text!r}; valid timeframes: {_VALID_TEXT}")


# Float noise (e.g. 86400.0000001 s from datetime arithmetic) must not cost a
# whole extra second or day of data.
_EPS = 1e-6


def ib_duration(seconds: float) -> str:
    """The IB ``durationStr`` that covers ``seconds``, rounded up.

    Up to one day in seconds (``"3600 S"``), then whole days (``"3 D"``), whole
    weeks when the day count is a multiple of 7 (``"2 W"``), and years above
    365 days (``"2 Y"``; IB requires ``Y`` there). Months are never used:
    their length varies.

    Args:
        seconds: The span to cover; positive and finite.

    Returns:
        The duration string.

    Raises:
        ValueError: ``seconds`` is not positive and finite (or is a bool).
        TypeError: ``seconds`` is not a number.
    """
    s = positive_number("seconds", seconds)
    if s <= _DAY + _EPS:
        return f"{max(1, math.ceil(s - _EPS))} S"
    days = math.ceil(s / _DAY - _EPS)
    if days > 365:
        return f"{math.ceil(days / 365)} Y"
    if days % 7 == 0:
        return f"{days // 7} W"
    return f"{days} D"


@dataclass(frozen=True)
class Chunk:
    """One historical request of a plan.

    Attributes:
        start: Inclusive start, tz-aware UTC.
        end: Exclusive end, tz-aware UTC: the request's ``endDateTime``.
        duration: IB ``durationStr`` that covers ``[start, end)``; it can be
            longer (at least one bar; whole days for daily and weekly bars; a
            spare day when counted in ``D``), so trim the answer to
            ``[start, end)``.
    """

    start: datetime
    end: datetime
    duration: str

    @property
    def ib_end(self) -> str:
        """``end`` as IB receives it: ``YYYYMMDD HH:MM:SS UTC``, whole seconds.

        This is what ib_async sends for an aware datetime, so it is also the
        right part of a pacing key: two requests whose ends differ only in
        microseconds are *identical* to IB.
        """
        return self.end.strftime("%Y%m%d %H:%M:%S UTC")


def _utc(name: str, value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__} {value!r}")
    if value.tzinfo is None:
        # Naive datetimes are UTC throughout this package (IB bars, nice_funcs frames).
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _chunk_duration(tf: Timeframe, span_s: float) -> str:
    secs = max(span_s, float(tf.seconds))
    days = math.ceil(secs / _DAY - _EPS)
    if tf.seconds >= _DAY:
        # Daily/weekly bars with an "S" duration are refused by IB: ask in days.
        # N sessions back from the end hold every bar labelled inside the range.
        return "1 D" if days <= 1 else ib_duration(days * _DAY)
    if secs <= _DAY + _EPS or days % 7 == 0:
        return ib_duration(secs)  # "S" and "W" are exact calendar spans
    # TWS counts "N D" in trading sessions, the current partial one included,
    # so N days may reach back less than N * 24 h; one spare day covers it.
    return ib_duration((days + 1) * _DAY)


def plan_chunks(timeframe: str | Timeframe, start: datetime, end: datetime) -> list[Chunk]:
    """Split ``[start, end)`` into pacing-safe IB requests, newest first.

    Newest first so the most recent bars (what agents look at) arrive first
    and a plan cut short by a timeout still holds the part that matters. The
    chunks tile the range exactly: the first ends at ``end``, each starts where
    the next (older) one ends, the last starts at ``start``, and each spans at
    most ``timeframe.max_chunk_seconds``.

    Args:
        timeframe: A :class:`Timeframe` or its name.
        start: Range start; naive means UTC.
        end: Range end; naive means UTC.

    Returns:
        The chunks, newest first.

    Raises:
        ValueError: ``end`` is not after ``start``, or the timeframe is unknown.
        TypeError: ``start``/``end`` are not datetimes.
    """
    tf = parse_timeframe(timeframe)
    start_utc, end_utc = _utc("start", start), _utc("end", end)
    if end_utc <= start_utc:
        raise ValueError(
            f"end ({end_utc.isoformat()}) must be after start ({start_utc.isoformat()})"
        )
    step = timedelta(seconds=tf.max_chunk_seconds)
    chunks: list[Chunk] = []
    hi = end_utc
    while hi > start_utc:
        lo = max(start_utc, hi - step)
        chunks.append(Chunk(lo, hi, _chunk_duration(tf, (hi - lo).total_seconds())))
        hi = lo
    return chunks


def check_days_back(timeframe: str | Timeframe, days_back: float) -> float:
    """Validate ``days_back`` for a timeframe; return it as a float.

    The bound is :attr:`Timeframe.max_days_back` (at most
    :data:`MAX_REQUESTS_PER_PLAN` historical requests): 420 days of 1m-15m
    bars, 1,800 days of 30m-4h bars, 21,900 days of daily or weekly bars.

    Raises:
        ValueError: ``days_back`` is not positive and finite, is a bool, or is
            above the bound (the message names the bound and a timeframe that
            reaches further).
        TypeError: ``days_back`` is not a number.
    """
    tf = parse_timeframe(timeframe)
    days = positive_number("days_back", days_back)
    if days > tf.max_days_back + _EPS:
        longer = next((t.name for t in _TABLE if t.max_days_back >= days), None)
        hint = f"; use a longer timeframe such as {longer!r}" if longer else ""
        raise ValueError(
            f"days_back={days_back!r} is above the maximum of {tf.max_days_back:g} days for "
            f"{tf.name} bars (at most {MAX_REQUESTS_PER_PLAN} requests, IB's allowance for "
            f"ten minutes){hint}"
        )
    return days


def days_for_bars(timeframe: Timeframe | str, bars: int) -> float:
    """Days that hold ``bars`` bars of ``timeframe`` around the clock.

    Raises:
        ValueError, TypeError: ``bars`` is not a whole number >= 1, or a bad timeframe.
    """
    tf = parse_timeframe(timeframe)
    if isinstance(bars, bool) or not isinstance(bars, numbers.Integral):
        raise TypeError(f"bars must be a whole number, got {type(bars).__name__} {bars!r}")
    if bars < 1:
        raise ValueError(f"bars must be >= 1, got {bars!r}")
    return int(bars) * tf.seconds / _DAY


def days_back_range(days_back: float, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The UTC range ``[now - days_back, now)``.

    Args:
        days_back: Days to look back; fractional is fine (0.33 = ~8 hours).
        now: The range end; default the current time. Naive means UTC.

    Returns:
        ``(start, end)`` as tz-aware UTC datetimes.

    Raises:
        ValueError: ``days_back`` is not positive and finite, is a bool, or
            reaches before year 1.
        TypeError: ``days_back`` is not a number.
    """
    days = positive_number("days_back", days_back)
    end = datetime.now(timezone.utc) if now is None else _utc("now", now)
    try:
        return end - timedelta(days=days), end
    except OverflowError:
        raise ValueError(f"days_back={days_back!r} reaches before year 1") from None
