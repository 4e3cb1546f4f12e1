"""SharedPacingBudget: IB's historical pacing rules, spent from one budget in Redis.

IB counts historical requests per gateway: 60 in 10 minutes, 6 per contract
in 2 s, none identical within 15 s (error 162 otherwise). Agent processes
that each keep a :class:`~ib_nice_funcs.timeframes.PacingBudget` of their
own break those rules together. With ``redis_url`` set, every process of a
gateway books its request slots in Redis instead, with one Lua script (so
booking is atomic) that dates everything by Redis's own clock (so the hosts'
clocks need not agree).

The rule the script applies is the budget's, made safe for slots booked out
of order: a slot ``t`` is free when no identical request lies within the
gap of it and fewer than the limit of requests lie within one window on
either side of it. That is never looser than IB's rule (it can be up to
twice as strict when many slots are booked ahead), and every span gets half
a second more slack than one process needs, since a process on a loaded
machine may send a little after its slot while the next one sends on time.

When Redis cannot be reached the process falls back to its own budget with
one WARNING and asks Redis again every few seconds (one WARNING when back).
Calls run on the loop thread through redis-py's blocking client with a short
timeout: one round trip per historical request.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from ..timeframes import Booking, PacingBudget
from .link import RedisLink
from .redis_store import KEY_PREFIX
from .state import digest

__all__ = ["SharedPacingBudget"]

#: Extra seconds on every span of the shared budget (see :meth:`SharedPacingBudget._ask`).
_CROSS_PROCESS_MARGIN_S = 0.5

# KEYS: all, by request, by contract. ARGV: gap, burst_n, burst_w, max_n, window,
# horizon, book (1 books the slot, 0 only asks), member tag.
# Returns {delay in microseconds (Lua numbers come back as integers), the slot's member}.
_SCRIPT = """
local t_ = redis.call('TIME')
local now = tonumber(t_[1]) + tonumber(t_[2]) / 1e6
local gap, bn, bw = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local mn, mw, horizon = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
for i = 1, 3 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. (now - horizon))
end
-- n or more slots strictly within w of t: the earliest of them + w (it then
-- leaves the window, so the candidate always moves on), else nil. Bounds are
-- written with 17 digits: Lua's default 14 would round a stored score's
-- neighbour onto it.
local function crowded(key, t, n, w)
  local near = redis.call('ZRANGEBYSCORE', key, string.format('(%.17g', t - w),
                          string.format('(%.17g', t + w), 'WITHSCORES', 'LIMIT', 0, n)
  if #near / 2 >= n then return math.max(tonumber(near[2]) + w, t + 1e-6) end
  return nil
end
local t = now
for _ = 1, 10000 do
  local nt = t
  local same = redis.call('ZRANGEBYSCORE', KEYS[2], string.format('%.17g', t - gap),
                          string.format('%.17g', t + gap), 'WITHSCORES')
  for i = 2, #same, 2 do
    local r = tonumber(same[i])
    if math.abs(r - t) < gap and r + gap > nt then nt = r + gap end
  end
  local b = crowded(KEYS[3], t, bn, bw)
  if b and b > nt then nt = b end
  local g = crowded(KEYS[1], t, mn, mw)
  if g and g > nt then nt = g end
  if nt <= t then break end
  t = nt
end
local member = ''
if ARGV[7] == '1' then
  member = string.format('%.6f', t) .. ':' .. ARGV[8]
  for i = 1, 3 do
    redis.call('ZADD', KEYS[i], string.format('%.17g', t), member)
    redis.call('EXPIRE', KEYS[i], math.ceil(horizon) + 60)
  end
end
return {math.floor((t - now) * 1e6), member}
"""

# KEYS[1] all. ARGV: window. Requests in the window now.
_COUNT = """
local t_ = redis.call('TIME')
local now = tonumber(t_[1]) + tonumber(t_[2]) / 1e6
return redis.call('ZCOUNT', KEYS[1], string.format('(%.17g', now - tonumber(ARGV[1])), '+inf')
"""


@dataclass
class _Held:
    """A booking of this process: its slot in Redis (None: booked locally only)."""

    member: str | None
    keys: list[str]
    own: Booking
    at: float


class SharedPacingBudget:
    """A :class:`~ib_nice_funcs.timeframes.PacingBudget` whose slots live in Redis.

    Same interface (``book``, ``release``, ``on_time``, ``projected_delay``,
    ``requests_left``, ``reserve``, ``delay_for``, ``record``); ``local`` is
    the process's own budget, kept current as a mirror and used alone while
    Redis is away. Thread-safe.
    """

    def __init__(self, url: str, host: str, port: int, local: PacingBudget) -> None:
        self.local = local
        self.link = RedisLink(url)
        self._prefix = f"{KEY_PREFIX}:gw:{host}:{port}:pace"
        self._tags = itertools.count(1)
        self._held: dict[int, _Held] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        # Anything else the local budget offers (limits, later additions) is its.
        return getattr(self.local, name)

    def _keys(self, key: Hashable, contract_key: Hashable) -> list[str]:
        return [f"{self._prefix}:all", f"{self._prefix}:k:{digest(key)}",
                f"{self._prefix}:c:{digest(contract_key)}"]

    def _spans(self) -> tuple[float, float, float]:
        # Processes sleep until their slot on a loaded machine and may send late;
        # the next one sends on time: more slack than one process needs.
        gap, burst_window, window = self.local.spans
        return (gap + _CROSS_PROCESS_MARGIN_S, burst_window + _CROSS_PROCESS_MARGIN_S,
                window + _CROSS_PROCESS_MARGIN_S)

    def _ask(self, key: Hashable, contract_key: Hashable, book: bool
             ) -> tuple[float, str] | None:
        """``(delay, slot member)`` from Redis, or None when it is unreachable."""
        local = self.local
        gap, burst_window, window = self._spans()
        horizon = max(gap, burst_window, window)
        tag = f"{id(self):x}.{next(self._tags)}"
        got = self.link.run(lambda c: self.link.script(_SCRIPT)(
            keys=self._keys(key, contract_key),
            args=[gap, local.burst_count, burst_window, local.max_requests, window, horizon,
                  "1" if book else "0", tag]), None)
        if got is None:
            return None
        micros, member = got
        member = member.decode() if isinstance(member, bytes) else str(member)
        return max(0.0, int(micros) / 1e6), member

    # -- the PacingBudget interface ---------------------------------------------------

    def book(self, key: Hashable, contract_key: Hashable) -> Booking:
        """Book the earliest slot every process agrees on; :meth:`release` it if unused."""
        own = self.local.book(key, contract_key)  # the mirror, for a Redis outage
        got = self._ask(key, contract_key, book=True)
        now = time.monotonic()
        with self._lock:
            self._prune(now)
            if got is None:
                self._held[own.serial] = _Held(None, [], own, now)
                return own
            delay, member = got
            self._held[own.serial] = _Held(member, self._keys(key, contract_key), own, now)
        return Booking(key, contract_key, now + delay, delay, own.serial)

    def release(self, booking: Booking) -> None:
        """Give back a slot whose request was never sent (no error if already gone)."""
        with self._lock:
            held = self._held.pop(booking.serial, None)
        if held is None:
            return
        self.local.release(held.own)
        member = held.member
        if member is not None:
            self.link.run(lambda c: [c.zrem(k, member) for k in held.keys], None)

    def on_time(self, booking: Booking, tolerance_s: float = 0.05) -> Booking:
        """Check a booking when its wait is over; book again if the waiter woke late."""
        with self._lock:
            held = self._held.get(booking.serial)
        if held is not None and held.member is None:  # booked while Redis was away
            moved = self.local.on_time(held.own, tolerance_s)
            if moved.serial != held.own.serial:
                with self._lock:
                    self._held.pop(booking.serial, None)
                    self._held[moved.serial] = _Held(None, [], moved, time.monotonic())
            return moved
        if held is None or time.monotonic() <= booking.at + tolerance_s:
            return dataclasses.replace(booking, delay=0.0)
        self.release(booking)
        return self.book(booking.key, booking.contract_key)

    def projected_delay(self, requests: Sequence[tuple[Hashable, Hashable]]) -> float:
        """Seconds until the last of ``requests`` could go; books nothing (for long)."""
        bookings = [self.book(key, contract_key) for key, contract_key in requests]
        try:
            return bookings[-1].delay if bookings else 0.0
        finally:
            for booking in bookings:
                self.release(booking)

    def requests_left(self) -> int:
        """Historical requests every process together may still send in the 10-minute window."""
        window = self._spans()[2]
        used = self.link.run(lambda c: self.link.script(_COUNT)(
            keys=[f"{self._prefix}:all"], args=[window]), None)
        if used is None:
            return self.local.requests_left()
        return max(0, self.local.max_requests - int(used))

    def reserve(self, key: Hashable, contract_key: Hashable) -> float:
        """Book the earliest slot every process agrees on; seconds to wait until it."""
        return self.book(key, contract_key).delay

    def delay_for(self, key: Hashable, contract_key: Hashable) -> float:
        """Seconds before a request may go (nothing is booked)."""
        shared = self._ask(key, contract_key, book=False)
        return self.local.delay_for(key, contract_key) if shared is None else shared[0]

    def record(self, key: Hashable, contract_key: Hashable, at: float | None = None) -> None:
        """Record a request as sent now (``at`` is honoured by the local budget only)."""
        self._ask(key, contract_key, book=True)
        self.local.record(key, contract_key, at)

    def __len__(self) -> int:
        return len(self.local)

    def _prune(self, now: float) -> None:
        """Forget bookings too old to be released or moved any more (lock held)."""
        horizon = max(self._spans())
        for serial in [n for n, h in self._held.items() if now - h.at > horizon]:
            del self._held[serial]
