"""The historical pacing budget: when each IB historical request may go.

IB refuses (error 162) a historical request that is identical to one made
within 15 s, the 6th for one contract within 2 s, or the 61st in ten
minutes. :class:`PacingBudget` books slots that keep to those rules; the IB
adapter asks it how long to wait before each request of a plan
(:func:`ib_nice_funcs.timeframes.plan_chunks` splits the range). Plain
arithmetic on the standard library: no sleeps, no I/O. Both names are also
importable from :mod:`ib_nice_funcs.timeframes`.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from ._numbers import positive_number

__all__ = ["Booking", "PacingBudget"]


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
        for name, span in (
            ("window_s", window_s),
            ("identical_gap_s", identical_gap_s),
            ("burst_window_s", burst_window_s),
        ):
            positive_number(name, span)
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

