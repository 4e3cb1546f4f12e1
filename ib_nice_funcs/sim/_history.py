"""IB's historical-data request rules, as plain functions (no I/O).

Validation mirrors what TWS answers: error 321 for requests it cannot parse
(bar size, duration format, date format) and error 162 ("Historical Market
Data Service error message:...") for requests HMDS refuses (no data of that
type, too long, pacing). The error texts follow IB's own wording.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .catalog import CRYPTO, FX, Instrument
from .market import PaperMarket

__all__ = [
    "BAR_SIZES",
    "HistError",
    "HistRequest",
    "PacingRules",
    "PacingTracker",
    "parse_bar_size",
    "parse_duration",
    "parse_end",
    "plan_request",
    "format_bar_dates",
    "HMDS",
    "NO_TZ_WARNING",
]

HMDS = "Historical Market Data Service error message:"
NO_TZ_WARNING = (
    "Warning: You submitted request with date-time attributes without explicit time zone. "
    "Please switch to use yyyymmdd-hh:mm:ss in UTC or use instrument time zone, like "
    "US/Eastern. Implied time zone functionality will be removed in the next API release"
)

#: Valid bar size strings -> (seconds, kind). Kind "seconds" is intraday.
BAR_SIZES: dict[str, tuple[int, str]] = {
    "1 secs": (1, "seconds"), "5 secs": (5, "seconds"), "10 secs": (10, "seconds"),
    "15 secs": (15, "seconds"), "30 secs": (30, "seconds"),
    "1 min": (60, "seconds"), "2 mins": (120, "seconds"), "3 mins": (180, "seconds"),
    "5 mins": (300, "seconds"), "10 mins": (600, "seconds"), "15 mins": (900, "seconds"),
    "20 mins": (1200, "seconds"), "30 mins": (1800, "seconds"),
    "1 hour": (3600, "seconds"), "2 hours": (7200, "seconds"), "3 hours": (10800, "seconds"),
    "4 hours": (14400, "seconds"), "8 hours": (28800, "seconds"),
    "1 day": (86400, "day"), "1 week": (7 * 86400, "week"), "1 month": (31 * 86400, "month"),
    # TWS's own error text calls the last two "1W" and "1M" and accepts them.
    "1W": (7 * 86400, "week"), "1M": (31 * 86400, "month"),
}
_LEGAL = ("1 secs, 5 secs, 10 secs, 15 secs, 30 secs, 1 min, 2 mins, 3 mins, 5 mins, 10 mins, "
          "15 mins, 20 mins, 30 mins, 1 hour, 2 hours, 3 hours, 4 hours, 8 hours, 1 day, 1W, 1M")

_DAY = 86400
#: Longest duration (in seconds; D=1 day, W=7, M=31, Y=366 days) served per
#: bar size. IB's step-size table is the guide; it is looser here because TWS
#: serves e.g. "5 D" of 1-minute bars. Longer requests get 162 "Time length exceed max".
MAX_SPAN: dict[int, float] = {
    1: 1800, 5: 3600, 10: 14400, 15: 14400, 30: _DAY,
    60: 7 * _DAY, 120: 7 * _DAY, 180: 31 * _DAY, 300: 31 * _DAY, 600: 31 * _DAY,
    900: 31 * _DAY, 1200: 31 * _DAY, 1800: 186 * _DAY,
    3600: 366 * _DAY, 7200: 366 * _DAY, 10800: 366 * _DAY, 14400: 366 * _DAY, 28800: 366 * _DAY,
}
_UNIT_SECONDS = {"S": 1, "D": _DAY, "W": 7 * _DAY, "M": 31 * _DAY, "Y": 366 * _DAY}
_WHAT = ("TRADES", "MIDPOINT", "BID", "ASK", "BID_ASK", "ADJUSTED_LAST", "AGGTRADES")
#: whatToShow values IB accepts that the paper market has no data for: answered
#: 162 "No historical market data" (a client ends its call on it; 321 is a
#: warning to ib_async, which would keep waiting).
_UNSERVED_WHAT = ("HISTORICAL_VOLATILITY", "OPTION_IMPLIED_VOLATILITY", "FEE_RATE",
                  "REBATE_RATE", "SCHEDULE", "YIELD_BID", "YIELD_ASK", "YIELD_BID_ASK",
                  "YIELD_LAST")
_DURATION_RE = re.compile(r"^(\d+) ([SDWMY])$")
_END_RE = re.compile(r"^(\d{8})([ -])(\d{2}):(\d{2}):(\d{2})(?: (\S+))?$")


class HistError(Exception):
    """A request TWS would reject; carries IB's error code and text."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def parse_bar_size(text: str) -> tuple[int, str]:
    """Bar size string -> (seconds, kind).

    Raises:
        HistError: 321 for anything but IB's exact strings.
    """
    try:
        return BAR_SIZES[text]
    except KeyError:
        raise HistError(321, "Error validating request.-'bK' : cause - Historical data bar size "
                             f"setting is invalid. Legal ones are: {_LEGAL}") from None


def parse_duration(text: str) -> tuple[int, str]:
    """Duration string (``"3 D"``) -> (count, unit).

    Raises:
        HistError: 321 for a malformed duration, a zero count or more than
            365 days not given in years.
    """
    m = _DURATION_RE.match(text.strip()) if isinstance(text, str) else None
    if not m or int(m.group(1)) <= 0:
        raise HistError(321, "Error validating request.-'bI' : cause - Historical data "
                             f"duration format is invalid: '{text}'. Use an integer followed by "
                             "a space and a unit: S, D, W, M or Y")
    n, unit = int(m.group(1)), m.group(2)
    if (unit == "D" and n > 365) or (unit == "W" and n > 52) or (unit == "M" and n > 12):
        raise HistError(321, "Error validating request.-'bI' : cause - Historical data requests "
                             "for durations longer than 365 days must be made in years")
    return n, unit


def parse_end(text: str, now: float, tws_tz: str = "US/Eastern") -> tuple[float, bool]:
    """End date/time string -> (UTC epoch, implied_time_zone).

    Accepted: ``""`` (now), ``"YYYYMMDD HH:MM:SS"`` (TWS time zone, implied),
    ``"YYYYMMDD HH:MM:SS <zone>"`` (``UTC``, ``GMT`` or an IANA/IB zone id such
    as ``US/Eastern``) and ``"YYYYMMDD-HH:MM:SS"`` (UTC).

    Raises:
        HistError: 321 for any other form.
    """
    text = (text or "").strip()
    if not text:
        return now, False
    m = _END_RE.match(text)
    bad = HistError(321, "Error validating request.-'bP' : cause - Invalid end date/time "
                         f"format: '{text}'. Use 'yyyymmdd hh:mm:ss [time zone]' or "
                         "'yyyymmdd-hh:mm:ss' in UTC")
    if not m or (m.group(2) == "-" and m.group(6)):
        raise bad
    zone = m.group(6)
    if m.group(2) == "-" or zone in ("UTC", "GMT"):
        tz: dt.tzinfo = dt.timezone.utc
    else:
        try:
            tz = ZoneInfo(zone or tws_tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise bad from None
    try:
        day = dt.datetime.strptime(m.group(1), "%Y%m%d")
        t = day.replace(hour=int(m.group(3)), minute=int(m.group(4)), second=int(m.group(5)),
                        tzinfo=tz)
    except ValueError:
        raise bad from None
    implied = m.group(2) == " " and not zone
    return t.timestamp(), implied


@dataclass
class HistRequest:
    """A validated historical request, ready for :meth:`PaperMarket.bars`."""

    inst: Instrument
    start: float
    end: float
    bar_seconds: int
    kind: str
    what: str
    use_rth: bool
    format_date: int
    implied_tz: bool = False


def _no_data_type(inst: Instrument, what: str, bar_seconds: int, kind: str) -> HistError:
    code = {"day": "1d", "week": "1w", "month": "1m"}.get(kind, str(bar_seconds))
    venue = {FX: "FXSUBPIP"}.get(inst.sec_type, inst.exchange)
    label = {"TRADES": "Last", "AGGTRADES": "AggTrades"}.get(what, what.title())
    return HistError(162, f"{HMDS}No historical market data for "
                          f"{inst.symbol}/{inst.sec_type}@{venue} {label} {code}")


def plan_request(market: PaperMarket, inst: Instrument, end_text: str, duration: str,
                 bar_size: str, what: str, use_rth: int, format_date: int,
                 keep_up_to_date: bool, now: float) -> HistRequest:
    """Validate a reqHistoricalData and compute its time window.

    "N D" means the last N sessions that started before the end (trading
    days, as TWS counts them); S, W, M and Y are calendar spans.

    Raises:
        HistError: with the code and text TWS would send.
    """
    bar_seconds, kind = parse_bar_size(bar_size)
    n, unit = parse_duration(duration)
    if format_date not in (1, 2):
        raise HistError(321, "Error validating request.-'bT' : cause - Date formatting "
                             f"selection of {format_date} rejected")
    if what in _UNSERVED_WHAT:  # valid for IB, no such data in the paper market
        raise _no_data_type(inst, what, bar_seconds, kind)
    if what not in _WHAT:
        raise HistError(321, "Error validating request.-'bJ' : cause - Historical data "
                             f"whatToShow '{what}' is invalid. Valid: {', '.join(_WHAT)}")
    if keep_up_to_date and end_text.strip():
        raise HistError(321, "Error validating request.-'bP' : cause - End date not supported "
                             "with live updates")
    if what == "ADJUSTED_LAST" and end_text.strip():
        raise HistError(321, "Error validating request.-'bP' : cause - End date not "
                             "supported with adjusted last")
    if ((what in ("TRADES", "ADJUSTED_LAST") and inst.sec_type in (FX, CRYPTO))
            or (what == "AGGTRADES" and inst.sec_type != CRYPTO)):
        raise _no_data_type(inst, what, bar_seconds, kind)
    end, implied = parse_end(end_text, now)
    # "Now" includes the tick at this very second; an explicit end excludes it.
    end = min(end, now + 1e-6) if end_text.strip() else now + 1e-6
    span = n * _UNIT_SECONDS[unit]
    if kind == "seconds" and span > MAX_SPAN[bar_seconds]:
        raise HistError(162, f"{HMDS}Time length exceed max.")
    rth = bool(use_rth)
    if unit == "S":
        start = end - n
    elif unit == "D":
        sess = market.last_sessions(inst.key, end, n, use_rth=rth)
        start = sess[0].start if sess else end
    else:
        tz = ZoneInfo(inst.time_zone)
        local = dt.datetime.fromtimestamp(end, tz)
        if unit == "W":
            start = end - n * 7 * _DAY
        elif unit == "M":
            months = local.year * 12 + local.month - 1 - n
            day = min(local.day, 28)
            start = local.replace(year=months // 12, month=months % 12 + 1, day=day).timestamp()
        else:
            start = local.replace(year=local.year - n, day=min(local.day, 28)).timestamp()
    return HistRequest(inst, start, end, bar_seconds, kind, what, rth, format_date, implied)


def no_data_error(inst: Instrument, what: str) -> HistError:
    """The 162 TWS sends when a valid request finds no bars."""
    label = {"TRADES": "Trades", "AGGTRADES": "AggTrades", "MIDPOINT": "Midpoint"}.get(
        what, what.title())
    return HistError(162, f"{HMDS}HMDS query returned no data: "
                          f"{inst.local_symbol}@{inst.exchange} {label}")


def format_bar_dates(times, dates, tz_name: str, format_date: int) -> list[str]:
    """Bar labels as TWS sends them.

    Daily and larger bars are ``YYYYMMDD`` whatever ``format_date`` says;
    intraday bars are ``YYYYMMDD HH:MM:SS <zone>`` (format 1) or epoch
    seconds (format 2).
    """
    if dates is not None:
        return [d.strftime("%Y%m%d") for d in dates]
    if format_date == 2:
        return [str(int(t)) for t in times.tolist()]
    import numpy as np
    import pandas as pd

    local = pd.DatetimeIndex(np.asarray(times, dtype="int64") * 1_000_000_000, tz="UTC")
    naive = local.tz_convert(tz_name).tz_localize(None).values.astype("datetime64[s]")
    suffix = " " + tz_name
    return [s[0:4] + s[5:7] + s[8:10] + " " + s[11:19] + suffix
            for s in np.datetime_as_string(naive, unit="s").tolist()]


def format_stamp(t: float, tz_name: str) -> str:
    """One instant as ``YYYYMMDD HH:MM:SS <zone>``."""
    return dt.datetime.fromtimestamp(t, ZoneInfo(tz_name)).strftime("%Y%m%d %H:%M:%S ") + tz_name


@dataclass
class PacingRules:
    """IB's historical-data pacing limits (all switchable for tests).

    Attributes:
        identical_s: an identical request within this many seconds violates.
        burst_count: this many requests for one contract/exchange/tick type ...
        burst_window_s: ... within this many seconds violate.
        max_requests: more than this many requests ...
        window_s: ... within this many seconds violate.
        max_bar_seconds: apply pacing only to bars of at most this size; None = all.
        small_bar_seconds: apply the identical-request and burst rules only to
            bars of at most this size: IB documents them for small bars (30 s
            or less), so an agent fetching several timeframes of one contract,
            or re-fetching a window to subscribe to it, is not refused; None =
            all sizes. The ten-minute budget counts every request.
    """

    identical_s: float = 15.0
    burst_count: int = 6
    burst_window_s: float = 2.0
    max_requests: int = 60
    window_s: float = 600.0
    max_bar_seconds: int | None = None
    small_bar_seconds: int | None = 30


@dataclass
class PacingTracker:
    """Remembers accepted requests and says whether a new one violates pacing.

    Only accepted requests are recorded, so a client that backs off recovers.
    Not thread-safe: the simulator uses it from its event loop only.
    """

    rules: PacingRules = field(default_factory=PacingRules)
    _identical: dict[Hashable, float] = field(default_factory=dict)
    _burst: dict[Hashable, deque] = field(default_factory=dict)
    _all: deque = field(default_factory=deque)

    def check(self, identical_key: Hashable, burst_key: Hashable, now: float,
              bar_seconds: int | None = None, weight: int = 1) -> str | None:
        """Record the request and return None, or return why it violates pacing.

        ``weight`` is how many requests it counts for in the ten-minute
        budget (IB counts a BID_ASK request twice).
        """
        r = self.rules
        if r.max_bar_seconds is not None and bar_seconds is not None \
                and bar_seconds > r.max_bar_seconds:
            return None
        small = r.small_bar_seconds is None or bar_seconds is None \
            or bar_seconds <= r.small_bar_seconds
        last = self._identical.get(identical_key)
        if small and last is not None and now - last < r.identical_s:
            return f"identical request within {r.identical_s:g} s"
        burst = self._burst.setdefault(burst_key, deque())
        while burst and now - burst[0] >= r.burst_window_s:
            burst.popleft()
        if small and len(burst) + 1 >= r.burst_count:
            return (f"{int(r.burst_count)} requests for the same contract within "
                    f"{r.burst_window_s:g} s")
        while self._all and now - self._all[0] >= r.window_s:
            self._all.popleft()
        if len(self._all) + weight > r.max_requests:
            return f"more than {int(r.max_requests)} requests within {r.window_s:g} s"
        self._identical[identical_key] = now
        burst.append(now)
        self._all.extend([now] * weight)
        return None

    def reset(self) -> None:
        """Forget every recorded request."""
        self._identical.clear()
        self._burst.clear()
        self._all.clear()
