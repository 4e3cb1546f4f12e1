"""Client Portal rate limits as plain objects (no I/O, one thread).

Each limit is a token bucket of ``count`` requests per ``per_s`` seconds
(capacity ``count``, so a burst of ``count`` at once is allowed, then
``count / per_s`` per second). A request that finds a bucket empty is a
violation: the caller answers HTTP 429. An IP that keeps violating (IB:
"if a violator's IP address continues to violate the rate limit, it is
placed into a penalty box") -- ``penalty_after`` violations within
``strike_window_s`` -- goes into the penalty box, where every request gets
429 until ``penalty_s`` has passed.
``slack_s`` forgives a request that arrives that much too early (network
jitter of a client pacing itself exactly at the limit).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["DEFAULT_RATE_LIMITS", "GLOBAL", "Bucket", "RateLimiter"]

#: Name of the limit that applies to every request.
GLOBAL = "global"

#: ``endpoint pattern -> (count, per seconds)``, as the real gateway documents
#: them for individual accounts; ``global`` covers every request.
DEFAULT_RATE_LIMITS: dict[str, tuple[float, float]] = {
    GLOBAL: (10, 1.0),
    "/iserver/marketdata/snapshot": (10, 1.0),
    "/tickle": (1, 1.0),
    "/iserver/account/orders": (1, 5.0),
    "/portfolio/accounts": (1, 5.0),
    "/portfolio/subaccounts": (1, 5.0),
    "/iserver/account/pnl/partitioned": (1, 5.0),
    "/iserver/scanner/params": (1, 900.0),
    "/iserver/scanner/run": (1, 1.0),
}


@dataclass
class Bucket:
    """A token bucket: ``capacity`` tokens, refilled at ``rate`` tokens per second."""

    capacity: float
    rate: float
    tokens: float
    stamp: float

    def take(self, now: float, slack_s: float) -> bool:
        """Take one token; False (and nothing taken) when the bucket is empty."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens + slack_s * self.rate >= 1.0 - 1e-9:
            self.tokens -= 1.0
            return True
        return False


class RateLimiter:
    """Per-IP buckets for the global and per-endpoint limits, plus the penalty box.

    Args:
        limits: ``pattern -> (count, per_s)``; see :data:`DEFAULT_RATE_LIMITS`.
        penalty_s: seconds an IP stays in the penalty box after a violation.
        clock: monotonic seconds.
        slack_s: early-arrival tolerance (see the module docstring).
        penalty_after: violations (within ``strike_window_s``) that put an IP
            into the penalty box; 1 boxes it on its first 429.
        strike_window_s: how long a violation counts towards ``penalty_after``.
    """

    def __init__(self, limits: Mapping[str, tuple[float, float]] | None = None,
                 penalty_s: float = 600.0, clock: Callable[[], float] | None = None,
                 slack_s: float = 0.05, penalty_after: int = 3,
                 strike_window_s: float = 60.0) -> None:
        import time

        if penalty_after < 1:
            raise ValueError(f"penalty_after must be at least 1, got {penalty_after}")
        self.penalty_after = int(penalty_after)
        self.strike_window_s = float(strike_window_s)
        self._strikes: dict[str, list[float]] = {}
        self.limits = dict(DEFAULT_RATE_LIMITS if limits is None else limits)
        self.penalty_s = float(penalty_s)
        self.clock = clock or time.monotonic
        self.slack_s = float(slack_s)
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self._penalty: dict[str, float] = {}

    def set_limits(self, limits: Mapping[str, tuple[float, float]]) -> None:
        """Replace the limits and forget every bucket (not the penalty box)."""
        self.limits = dict(limits)
        self._buckets.clear()

    def penalized_until(self, ip: str) -> float | None:
        """Clock time when ``ip`` leaves the penalty box, or None if it is not in it."""
        until = self._penalty.get(ip)
        if until is None:
            return None
        if self.clock() >= until:
            del self._penalty[ip]
            return None
        return until

    def clear_penalty(self, ip: str | None = None) -> None:
        """Release ``ip`` (or every IP) from the penalty box."""
        if ip is None:
            self._penalty.clear()
        else:
            self._penalty.pop(ip, None)

    def reset(self) -> None:
        """Forget every bucket and violation and release every IP."""
        self._buckets.clear()
        self._penalty.clear()
        self._strikes.clear()

    def check(self, ip: str, pattern: str) -> str | None:
        """Account for one request; None if allowed, else why it gets a 429.

        A request from an IP in the penalty box is refused without taking
        tokens; a violation puts the IP into the box.
        """
        if self.penalized_until(ip) is not None:
            return "penalty box"
        now = self.clock()
        why = None
        for name in (GLOBAL, pattern):
            limit = self.limits.get(name)
            if limit is None or (name == pattern and pattern == GLOBAL):
                continue
            count, per_s = limit
            key = (ip, name)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = Bucket(float(count), count / per_s, float(count),
                                                     now)
            if not bucket.take(now, self.slack_s):
                why = (f"more than {count:g} requests per {per_s:g} s"
                       + ("" if name == GLOBAL else f" to {name}"))
                break
        if why is not None:
            self.strike(ip)
        return why

    def strike(self, ip: str) -> None:
        """Count one violation of ``ip``; the ``penalty_after``-th within the window
        puts it into the penalty box."""
        now = self.clock()
        strikes = [t for t in self._strikes.get(ip, []) if now - t < self.strike_window_s]
        strikes.append(now)
        if len(strikes) >= self.penalty_after:
            strikes = []
            self.punish(ip)
        self._strikes[ip] = strikes

    def punish(self, ip: str) -> None:
        """Put ``ip`` into the penalty box for :attr:`penalty_s` seconds from now."""
        if self.penalty_s > 0:
            self._penalty[ip] = self.clock() + self.penalty_s
