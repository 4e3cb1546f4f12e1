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

import itertools
from collections.abc import Hashable
from typing import Any

from .link import RedisLink
from .redis_store import KEY_PREFIX
from .state import digest

__all__ = ["SharedPacingBudget"]

#: Extra seconds on every span of the shared budget (see :meth:`SharedPacingBudget._ask`).
_CROSS_PROCESS_MARGIN_S = 0.5

# KEYS: all, by request, by contract. ARGV: gap, burst_n, burst_w, max_n, window,
# horizon, book (1 books the slot, 0 only asks), member tag.
# Returns the delay in microseconds (an integer: Lua numbers come back truncated).
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
if ARGV[7] == '1' then
  local member = string.format('%.6f', t) .. ':' .. ARGV[8]
  for i = 1, 3 do
    redis.call('ZADD', KEYS[i], t, member)
    redis.call('EXPIRE', KEYS[i], math.ceil(horizon) + 60)
  end
end
return math.floor((t - now) * 1e6)
"""


class SharedPacingBudget:
    """A :class:`~ib_nice_funcs.timeframes.PacingBudget` whose slots live in Redis.

    Same interface (``reserve``, ``delay_for``, ``record``); ``local`` is the
    process's own budget, used (and kept up to date) while Redis is away.
    Thread-safe.
    """

    def __init__(self, url: str, host: str, port: int, local: Any) -> None:
        self.local = local
        self.link = RedisLink(url)
        self._prefix = f"{KEY_PREFIX}:gw:{host}:{port}:pace"
        self._tags = itertools.count(1)

    def __getattr__(self, name: str) -> Any:
        # Anything else the local budget offers (limits, later additions) is its.
        return getattr(self.local, name)

    def _keys(self, key: Hashable, contract_key: Hashable) -> list[str]:
        return [f"{self._prefix}:all", f"{self._prefix}:k:{digest(key)}",
                f"{self._prefix}:c:{digest(contract_key)}"]

    def _ask(self, key: Hashable, contract_key: Hashable, book: bool) -> float | None:
        """The shared answer, or None when Redis is unreachable (the caller falls back)."""
        local = self.local
        # Processes sleep until their slot on a loaded machine and may send late;
        # the next one sends on time: more slack than one process needs.
        gap, burst_window, window = (span + _CROSS_PROCESS_MARGIN_S for span in local.spans)
        horizon = max(gap, burst_window, window)
        tag = f"{id(self):x}.{next(self._tags)}"
        micros = self.link.run(lambda c: self.link.script(_SCRIPT)(
            keys=self._keys(key, contract_key),
            args=[gap, local.burst_count, burst_window, local.max_requests, window, horizon,
                  "1" if book else "0", tag]), None)
        return None if micros is None else max(0.0, int(micros) / 1e6)

    def reserve(self, key: Hashable, contract_key: Hashable) -> float:
        """Book the earliest slot every process agrees on; seconds to wait until it."""
        shared = self._ask(key, contract_key, book=True)
        own = self.local.reserve(key, contract_key)  # kept current for a Redis outage
        return own if shared is None else shared

    def delay_for(self, key: Hashable, contract_key: Hashable) -> float:
        """Seconds before a request may go (nothing is booked)."""
        shared = self._ask(key, contract_key, book=False)
        return self.local.delay_for(key, contract_key) if shared is None else shared

    def record(self, key: Hashable, contract_key: Hashable, at: float | None = None) -> None:
        """Record a request as sent now (``at`` is honoured by the local budget only)."""
        self._ask(key, contract_key, book=True)
        self.local.record(key, contract_key, at)

    def __len__(self) -> int:
        return len(self.local)
