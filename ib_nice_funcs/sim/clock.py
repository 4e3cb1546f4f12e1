"""MarketClock: the simulators' market-hours clock, settable and pausable.

A :class:`~ib_nice_funcs.sim.market.PaperMarket` asks its clock for "now";
the market's sessions then decide what trades: a closed market sends no
ticks, stock orders wait (PreSubmitted) for the regular session unless a
limit/stop order says ``outsideRth``, MOC/LOC orders fill at the 16:00 ET
close. A MarketClock lets a user's tests pick the hour (``MarketClock.at(
"2024-03-06 15:59:50")``), move it (:meth:`advance`, :meth:`set`) or stop
it (:meth:`pause`); while running it moves with real time. The CLI's
``sim --at`` uses one.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["MarketClock", "parse_market_time"]

_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M",
            "%Y-%m-%d")


def parse_market_time(text: str, default_tz: str = "America/New_York") -> float:
    """``"2024-03-06 15:59[:50] [zone]"`` -> UTC epoch seconds (zone default: New York).

    Raises:
        ValueError: for any other form or an unknown zone.
    """
    parts = text.strip().rsplit(" ", 1)
    zone = default_tz
    if len(parts) == 2 and not parts[1][:1].isdigit():
        text, zone = parts[0], parts[1]
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {zone!r}") from None
    for fmt in _FORMATS:
        try:
            return dt.datetime.strptime(text.strip(), fmt).replace(tzinfo=tz).timestamp()
        except ValueError:
            continue
    raise ValueError(f"cannot read {text!r}: use 'YYYY-MM-DD HH:MM[:SS] [zone]'")


class MarketClock:
    """A callable clock (UTC epoch seconds) that starts where you say.

    Thread-safe: tests may move it while the simulator's loop reads it.

    Args:
        start: the market time now (None: the wall clock's).
        running: False starts it paused (time stands still until :meth:`resume`).
        wall: the underlying clock (``time.time``).
    """

    def __init__(self, start: float | None = None, *, running: bool = True,
                 wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._lock = threading.Lock()
        now = wall()
        self._offset = (now if start is None else float(start)) - now
        self._paused_at: float | None = None if running else now + self._offset

    @classmethod
    def at(cls, text: str, *, running: bool = True) -> MarketClock:
        """A clock starting at a market time given as text (see :func:`parse_market_time`).

        Raises:
            ValueError: for unreadable text.
        """
        return cls(parse_market_time(text), running=running)

    def __call__(self) -> float:
        with self._lock:
            if self._paused_at is not None:
                return self._paused_at
            return self._wall() + self._offset

    def set(self, t: float) -> None:
        """Jump to ``t`` (UTC epoch seconds); a paused clock stays paused there."""
        with self._lock:
            if self._paused_at is not None:
                self._paused_at = float(t)
            else:
                self._offset = float(t) - self._wall()

    def advance(self, seconds: float) -> None:
        """Move the clock forward (or back, if negative) by ``seconds``."""
        self.set(self() + seconds)

    def pause(self) -> None:
        """Stop time where it is."""
        with self._lock:
            if self._paused_at is None:
                self._paused_at = self._wall() + self._offset

    def resume(self) -> None:
        """Let time run again from where it stood."""
        with self._lock:
            if self._paused_at is not None:
                self._offset = self._paused_at - self._wall()
                self._paused_at = None
