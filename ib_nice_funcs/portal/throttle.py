"""Client-side rate limits for the Client Portal: token buckets, concurrency caps, penalty box.

Everything here is plain arithmetic on a clock that is passed in (no
sockets, no sleeping), so it is tested with a fake clock. The HTTP layer
asks :meth:`Throttle.reserve` for a send slot and waits the returned delay
itself; a 429 from the gateway goes into :class:`PenaltyBox`, which then
refuses every call at once until the penalty is over.

Why our own bucket instead of a PyPI one: ``token-bucket`` reads
``time.monotonic`` inside its storage (no fake clock) and can only say
yes/no, not "how long until a token"; ``pyrate-limiter`` is a sliding-window
log with integer-millisecond clocks, adds a fixed ``buffer_ms`` to every
wait and has changed its API in each major version; ``limits`` only says
yes/no too and pulls in ``deprecated``. None has the multi-bucket
"book one slot in all of them at once" (without a caller held back by one
endpoint blocking the global budget) nor the penalty box this needs; the
bucket below (capacity one, kept as a calendar of booked send times) is
thirty lines.

The limits (IB, individual accounts): about 10 requests per second overall;
``/iserver/marketdata/snapshot`` 10/s; history at most 5 concurrent;
``/tickle`` 1/s; ``/iserver/account/orders`` and ``/portfolio/accounts`` 1
per 5 s. A 429 puts the client's IP in a penalty box for 10-15 minutes, so
the buckets run slightly under the limits (``headroom``) with no burst:
network jitter must never turn an exactly-paced stream into a violation.
"""

from __future__ import annotations

import bisect
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from ..errors import RequestTimeoutError, SourceUnavailableError

__all__ = [
    "DEFAULT_LIMITS",
    "EndpointLimit",
    "PenaltyBox",
    "Throttle",
    "TokenBucket",
    "endpoint_key",
]

Clock = Callable[[], float]


class TokenBucket:
    """A token bucket of capacity one: sends at least ``1 / rate`` seconds apart.

    Kept as a calendar of booked send times rather than a single "next free
    time", so that a caller booked into the future (held back by another
    bucket, e.g. ``/tickle``'s 1 per second) leaves the slots before it free
    for everyone else. Not thread-safe on its own; :class:`Throttle`
    serialises access.

    Args:
        rate: Tokens per second (> 0).
    """

    _EPS = 1e-9  # float noise must not turn "exactly one interval apart" into a conflict

    def __init__(self, rate: float) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate={rate!r} must be a positive number of tokens per second")
        self.rate = float(rate)
        self.interval = 1.0 / self.rate
        self._booked: list[float] = []  # sorted send times still within reach

    def earliest(self, at: float) -> float:
        """The earliest time >= ``at`` that is an interval away from every booked send."""
        gap = self.interval - self._EPS
        i = bisect.bisect_right(self._booked, at - gap)
        for booked in self._booked[i:]:
            if booked >= at + gap:
                break
            at = booked + self.interval
        return at

    def commit(self, at: float) -> None:
        """Book a send at ``at`` (a time :meth:`earliest` returned)."""
        bisect.insort(self._booked, at)

    def prune(self, now: float) -> None:
        """Forget sends too old to constrain anything from ``now`` on."""
        cut = bisect.bisect_left(self._booked, now - self.interval)
        if cut:
            del self._booked[:cut]


@dataclass(frozen=True)
class EndpointLimit:
    """A per-endpoint limit.

    Attributes:
        count: Requests allowed per ``per_s`` seconds (None: no rate limit).
        per_s: The window those requests are spread over.
        concurrent: Requests allowed in flight at once (None: no cap).
    """

    count: float | None = None
    per_s: float = 1.0
    concurrent: int | None = None


#: Per-endpoint limits, keyed as :func:`endpoint_key` names endpoints.
DEFAULT_LIMITS: Mapping[str, EndpointLimit] = {
    "snapshot": EndpointLimit(10, 1.0),
    "history": EndpointLimit(concurrent=5),
    "tickle": EndpointLimit(1, 1.0),
    "live_orders": EndpointLimit(1, 5.0),
    "portfolio_accounts": EndpointLimit(1, 5.0),
}

_KEYS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("snapshot", re.compile(r"^/iserver/marketdata/snapshot/?$")),
    ("history", re.compile(r"^/iserver/marketdata/history/?$")),
    ("tickle", re.compile(r"^/tickle/?$")),
    ("live_orders", re.compile(r"^/iserver/account/orders/?$")),
    ("portfolio_accounts", re.compile(r"^/portfolio/accounts/?$")),
)


def endpoint_key(path: str) -> str | None:
    """The :data:`DEFAULT_LIMITS` key of an API path (without query), or None.

    >>> endpoint_key("/iserver/marketdata/snapshot")
    'snapshot'
    >>> endpoint_key("/iserver/account/DU1/orders") is None  # placing is not "live orders"
    True
    """
    path = path.split("?", 1)[0]
    for key, pattern in _KEYS:
        if pattern.match(path):
            return key
    return None


class Throttle:
    """The global bucket plus per-endpoint buckets and concurrency caps, for one gateway.

    Thread-safe. Callers *wait* for a slot rather than being refused: they
    call :meth:`reserve` with the longest wait they can afford, sleep the
    returned delay, then send.

    Args:
        rate: Overall requests per second the gateway allows (IB: 10).
        limits: Per-endpoint limits (default :data:`DEFAULT_LIMITS`).
        headroom: Fraction of each advertised rate actually used (0 < h <= 1),
            so jitter in the send times cannot add up to a violation.
        clock: Monotonic seconds (tests pass a fake clock).
    """

    def __init__(
        self,
        rate: float = 10.0,
        limits: Mapping[str, EndpointLimit] | None = None,
        *,
        headroom: float = 0.95,
        clock: Clock = time.monotonic,
    ) -> None:
        if not 0 < headroom <= 1:
            raise ValueError(f"headroom={headroom!r} must be in (0, 1]")
        self.rate = float(rate)
        self.headroom = float(headroom)
        self.clock = clock
        self._lock = threading.Lock()
        self._global = TokenBucket(rate * headroom)
        self._buckets: dict[str, TokenBucket] = {}
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        for key, limit in (DEFAULT_LIMITS if limits is None else limits).items():
            if limit.count:
                self._buckets[key] = TokenBucket(limit.count / limit.per_s * headroom)
            if limit.concurrent:
                self._slots[key] = threading.BoundedSemaphore(int(limit.concurrent))

    def reserve(self, key: str | None, *, max_wait: float, what: str = "request") -> float:
        """Book the next send slot for an endpoint; return how long to wait for it.

        The slot is the earliest time that the global bucket and ``key``'s
        bucket (if it has one) both allow; it is booked in both at once. Does
        not block.

        Args:
            key: :func:`endpoint_key` of the request, or None (global limit only).
            max_wait: The longest the caller can wait (its remaining timeout).
            what: What is being sent, for the error message.

        Returns:
            Seconds from now until the slot (0 when a token is free now).

        Raises:
            RequestTimeoutError: the slot is further away than ``max_wait``
                (nothing is booked then).
        """
        with self._lock:
            now = self.clock()
            buckets = [self._global]
            own = self._buckets.get(key) if key else None
            if own is not None:
                buckets.append(own)
            at = now
            moved = True
            while moved:  # a fixed point: a time every bucket accepts
                moved = False
                for bucket in buckets:
                    bucket.prune(now)
                    found = bucket.earliest(at)
                    if found > at:
                        at, moved = found, True
            delay = at - now
            if delay > max(0.0, max_wait):
                raise RequestTimeoutError(
                    f"{what}: the Client Portal rate limit ({_describe(key, self.rate)}) allows "
                    f"the next request in {delay:.1f} s, beyond the {max(0.0, max_wait):.1f} s "
                    "left in this call; retry later or raise the timeout"
                )
            for bucket in buckets:
                bucket.commit(at)
            return delay

    def concurrency(self, key: str | None) -> threading.BoundedSemaphore | None:
        """The semaphore capping requests in flight for ``key``, or None when uncapped.

        The caller acquires it with a timeout before sending and releases it
        after the answer arrived.
        """
        return self._slots.get(key) if key else None


def _describe(key: str | None, rate: float) -> str:
    limit = DEFAULT_LIMITS.get(key or "")
    if limit is not None and limit.count:
        return f"{limit.count:g} per {limit.per_s:g} s for {key}, {rate:g}/s overall"
    return f"{rate:g} requests per second"


class PenaltyBox:
    """Remembers an HTTP 429 and refuses every call until the penalty is over.

    Thread-safe. IB keeps an IP that broke a rate limit in its penalty box
    for 10-15 minutes; asking again during that time only extends it, so
    every call fails fast (no network) and data falls through to the next
    source. After the penalty the next call goes through by itself.

    Args:
        clock: Monotonic seconds (tests pass a fake clock).
        wall: Epoch seconds, only to say until when in messages.
    """

    def __init__(self, clock: Clock = time.monotonic, wall: Clock = time.time) -> None:
        self.clock = clock
        self.wall = wall
        self._lock = threading.Lock()
        self._until = -math.inf
        self._reason = ""
        self.entered = 0

    def enter(self, seconds: float, reason: str) -> None:
        """Start (or extend) a penalty of ``seconds`` from now because of ``reason``."""
        with self._lock:
            self._until = max(self._until, self.clock() + float(seconds))
            self._reason = reason
            self.entered += 1

    def clear(self) -> None:
        """End the penalty now."""
        with self._lock:
            self._until = -math.inf

    def remaining(self) -> float:
        """Seconds of penalty left (0 when not penalised)."""
        with self._lock:
            return max(0.0, self._until - self.clock())

    @property
    def active(self) -> bool:
        """Whether calls are refused now."""
        return self.remaining() > 0

    def check(self, what: str) -> None:
        """Raise at once if a penalty is running; return otherwise.

        Raises:
            SourceUnavailableError: names until when (UTC) and why.
        """
        with self._lock:
            left = self._until - self.clock()
            reason = self._reason
        if left <= 0:
            return
        until = datetime.fromtimestamp(self.wall() + left, timezone.utc)
        raise SourceUnavailableError(
            f"{what}: the Client Portal is backing off until {until:%H:%M:%S} UTC "
            f"({left:.0f} s left) because {reason}; nothing was sent. Data falls through to the "
            "next source meanwhile; lower the request rate, or shorten the wait with "
            "IB_PORTAL_PENALTY_S if the gateway allows"
        )
