"""Timeframes, IB duration strings, request chunking and the historical pacing budget.

Everything here is plain arithmetic on the standard library: no pandas, no
ib_async, no sockets. The IB adapter asks :func:`plan_chunks` how to split a
range into requests and :class:`PacingBudget` how long to wait before each.

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

import bisect
import dataclasses
import math
import numbers
import re
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

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


def _check_positive_number(name: str, value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive number, got the bool {value!r}")
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {type(value).__name__} {value!r}")
    x = float(value)
    if not math.isfinite(x) or x <= 0:
        raise ValueError(f"{name} must be a positive, finite number, got {value!r}")
    return x


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
    s = _check_positive_number("seconds", seconds)
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
    days = _check_positive_number("days_back", days_back)
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
    days = _check_positive_number("days_back", days_back)
    end = datetime.now(timezone.utc) if now is None else _utc("now", now)
    try:
        return end - timedelta(days=days), end
    except OverflowError:
        raise ValueError(f"days_back={days_back!r} reaches before year 1") from None


@dataclass(frozen=True)
class Booking:
    """A slot booked in a :class:`PacingBudget`.

    Attributes:
        key: The request's exact key.
        contract_key: Its contract + exchange + tick type.
        at: Budget-clock time the slot starts.
        delay: Seconds from booking until ``at``.
        serial: Tells bookings apart (two may share a time).
    """

    key: Hashable
    contract_key: Hashable
    at: float
    delay: float
    serial: int


class PacingBudget:
    """Tracks historical requests so none breaks IB's pacing rules.

    IB refuses (error 162) a historical request when it is identical to one
    made within 15 s, when it is the 6th for the same contract, exchange and
    tick type within 2 s, or when it would be the 61st in 10 minutes. Nothing
    here sleeps or does I/O: callers ask how long to wait and wait themselves,
    which keeps it testable with a fake clock. Thread-safe.

    Use :meth:`book` (or :meth:`reserve`) when several callers share the
    budget: it finds the delay and books the slot in one step, so two
    concurrent callers never get the same slot. A caller that gives up before
    its slot comes hands it back with :meth:`release`, so waiting callers
    that time out never push the schedule out for everyone else.
    :meth:`projected_delay` answers "when could the last of these requests
    go?" without booking anything. :meth:`delay_for` + :meth:`record` is the
    two-step form.

    Args:
        clock: Monotonic seconds.
        max_requests: Requests allowed in any ``window_s``.
        window_s: The sliding window for ``max_requests``.
        identical_gap_s: Minimum gap between identical requests.
        burst_count: Requests allowed per contract in any ``burst_window_s``.
        burst_window_s: The burst window.
        margin_s: Extra slack added to every gap and window, so that network
            jitter between here and IB cannot squeeze two requests closer
            together than the rule allows.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        max_requests: int = 60,
        window_s: float = 600.0,
        identical_gap_s: float = 15.0,
        burst_count: int = 5,
        burst_window_s: float = 2.0,
        margin_s: float = 0.1,
    ) -> None:
        for name, value in (("max_requests", max_requests), ("burst_count", burst_count)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name, value in (
            ("window_s", window_s),
            ("identical_gap_s", identical_gap_s),
            ("burst_window_s", burst_window_s),
        ):
            _check_positive_number(name, value)
        if isinstance(margin_s, bool) or not math.isfinite(float(margin_s)) or margin_s < 0:
            raise ValueError(f"margin_s must be >= 0, got {margin_s!r}")
        self._clock = clock
        self.max_requests = max_requests
        self.burst_count = burst_count
        self._window = float(window_s) + margin_s
        self._gap = float(identical_gap_s) + margin_s
        self._burst_window = float(burst_window_s) + margin_s
        # Older records cannot constrain a request sent now or later.
        self._horizon = max(self._window, self._gap, self._burst_window)
        self._all: list[float] = []
        self._by_key: dict[Hashable, list[float]] = {}
        self._by_contract: dict[Hashable, list[float]] = {}
        #: Bookings not yet released, by serial (so a release counts once).
        self._booked: dict[int, float] = {}
        self._serial = 0
        self._lock = threading.Lock()

    def requests_left(self) -> int:
        """Historical requests that may still go out in the current 10-minute window."""
        with self._lock:
            self._prune(self._clock())
            return max(0, self.max_requests - len(self._all))

    def delay_for(self, key: Hashable, contract_key: Hashable) -> float:
        """Seconds to wait before sending a request (0.0 when it may go now).

        Args:
            key: Identifies the request exactly (contract, end, duration, bar
                size, what to show, RTH...): equal keys are "identical requests".
            contract_key: Contract + exchange + tick type, for the burst rule.

        Returns:
            The delay; sending after it (with no other request recorded
            meanwhile) breaks no rule.
        """
        with self._lock:
            now = self._clock()
            self._prune(now)
            return self._earliest(key, contract_key, now) - now

    def record(self, key: Hashable, contract_key: Hashable, at: float | None = None) -> None:
        """Record a request as sent.

        Args:
            key: As for :meth:`delay_for`.
            contract_key: As for :meth:`delay_for`.
            at: Clock time it was sent; default now.
        """
        with self._lock:
            t = self._clock() if at is None else float(at)
            self._insert(key, contract_key, t)

    def reserve(self, key: Hashable, contract_key: Hashable) -> float:
        """Book the earliest safe slot for a request and return the wait until it.

        Args:
            key: As for :meth:`delay_for`.
            contract_key: As for :meth:`delay_for`.

        Returns:
            Seconds to wait before sending; the slot is already recorded.
        """
        return self.book(key, contract_key).delay

    def book(self, key: Hashable, contract_key: Hashable) -> Booking:
        """Book the earliest safe slot; :meth:`release` it if it goes unused.

        Args:
            key: As for :meth:`delay_for`.
            contract_key: As for :meth:`delay_for`.

        Returns:
            The :class:`Booking`; ``booking.delay`` is the wait before sending.
        """
        with self._lock:
            now = self._clock()
            self._prune(now)
            t = self._earliest(key, contract_key, now)
            self._insert(key, contract_key, t)
            self._serial += 1
            self._booked[self._serial] = t
            return Booking(key, contract_key, t, t - now, self._serial)

    def release(self, booking: Booking) -> None:
        """Give back a booked slot whose request was never sent (no error if already gone)."""
        with self._lock:
            if self._booked.pop(booking.serial, None) is not None:
                self._remove(booking.key, booking.contract_key, booking.at)

    def on_time(self, booking: Booking, tolerance_s: float = 0.05) -> Booking:
        """Check a booking when its wait is over; move it if the waiter woke late.

        A busy event loop can wake a waiter after its slot, so that it would
        send closer to the next booked requests than the rules allow. A late
        booking is moved to the earliest slot that is safe from now (given
        every other booking); the returned booking's ``delay`` says how much
        longer to wait (0.0 when on time).

        Args:
            booking: From :meth:`book` (or an earlier :meth:`on_time`).
            tolerance_s: Lateness that needs no move (below ``margin_s``).
        """
        with self._lock:
            now = self._clock()
            if now <= booking.at + tolerance_s or booking.serial not in self._booked:
                return Booking(booking.key, booking.contract_key, booking.at, 0.0, booking.serial)
            del self._booked[booking.serial]
            self._remove(booking.key, booking.contract_key, booking.at)
            self._prune(now)
            t = self._earliest(booking.key, booking.contract_key, now)
            self._insert(booking.key, booking.contract_key, t)
            self._serial += 1
            self._booked[self._serial] = t
            return Booking(booking.key, booking.contract_key, t, t - now, self._serial)

    def projected_delay(self, requests: Sequence[tuple[Hashable, Hashable]]) -> float:
        """Seconds from now until the last of ``requests`` could be sent; books nothing.

        Args:
            requests: ``(key, contract_key)`` pairs, sent in this order.

        Returns:
            The wait before the last one (0.0 for none), given what is booked now.
        """
        with self._lock:
            now = self._clock()
            self._prune(now)
            placed: list[tuple[Hashable, Hashable, float]] = []
            try:
                last = now
                for key, contract_key in requests:
                    last = self._earliest(key, contract_key, now)
                    self._insert(key, contract_key, last)
                    placed.append((key, contract_key, last))
                return last - now
            finally:
                for key, contract_key, t in placed:
                    self._remove(key, contract_key, t)

    @property
    def spans(self) -> tuple[float, float, float]:
        """``(identical gap, burst window, window)`` in seconds, margins included.

        For a budget kept elsewhere (``ib_nice_funcs.fleet.pacing``) that
        applies the same rules.
        """
        return (self._gap, self._burst_window, self._window)

    def __len__(self) -> int:
        """Requests still inside the longest window."""
        with self._lock:
            return len(self._all)

    def _insert(self, key: Hashable, contract_key: Hashable, t: float) -> None:
        bisect.insort(self._all, t)
        bisect.insort(self._by_key.setdefault(key, []), t)
        bisect.insort(self._by_contract.setdefault(contract_key, []), t)

    def _remove(self, key: Hashable, contract_key: Hashable, t: float) -> None:
        for times, table, k in (
            (self._all, None, None),
            (self._by_key.get(key), self._by_key, key),
            (self._by_contract.get(contract_key), self._by_contract, contract_key),
        ):
            if not times:
                continue
            i = bisect.bisect_left(times, t)
            if i < len(times) and times[i] == t:
                del times[i]
            if table is not None and not times:
                del table[k]

    def _prune(self, now: float) -> None:
        cutoff = now - self._horizon
        if not self._all or self._all[0] >= cutoff:
            return
        for serial in [n for n, t in self._booked.items() if t < cutoff]:
            del self._booked[serial]
        del self._all[: bisect.bisect_left(self._all, cutoff)]
        for table in (self._by_key, self._by_contract):
            for k in list(table):
                times = table[k]
                del times[: bisect.bisect_left(times, cutoff)]
                if not times:
                    del table[k]

    def _earliest(self, key: Hashable, contract_key: Hashable, now: float) -> float:
        # Move the candidate later until no rule objects. Every move lands on
        # "some record + a rule's span" and strictly increases the candidate,
        # so the loop ends; with only past records the first answer is exact.
        t = now
        same_key = self._by_key.get(key, ())
        same_contract = self._by_contract.get(contract_key, [])
        while True:
            nt = t
            for r in same_key:
                if abs(r - t) < self._gap:
                    nt = max(nt, r + self._gap)
            nt = max(nt, _window_bump(same_contract, t, self.burst_count, self._burst_window))
            nt = max(nt, _window_bump(self._all, t, self.max_requests, self._window))
            if nt <= t:
                return t
            t = nt


def _window_bump(times: list[float], t: float, limit: int, span: float) -> float:
    """Earliest candidate >= t suggested by the sliding-window rule.

    The rule: any ``limit + 1`` consecutive requests (sorted by time) must span
    at least ``span``. Returns ``t`` when inserting ``t`` into ``times`` breaks
    no window, else a later time that fixes the broken windows seen.
    """
    idx = bisect.bisect_right(times, t)
    n = len(times) + 1

    def merged(k: int) -> float:
        if k < idx:
            return times[k]
        return t if k == idx else times[k - 1]

    bump = t
    for s in range(max(0, idx - limit), idx + 1):
        e = s + limit
        if e >= n:
            break
        if merged(e) - merged(s) < span:
            other = merged(s) if s != idx else merged(s + 1)
            bump = max(bump, other + span)
    return bump

