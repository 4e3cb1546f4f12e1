"""MessageShare: IB's 50 messages per second, split among the processes of a gateway.

ib_async throttles each connection to ``MaxRequests`` (45) messages per
second. Twenty agent processes on one gateway would each take that whole
allowance. With ``redis_url`` set, each process renews its membership every
second (a sorted set dated by Redis's clock; members silent for 3 s leave)
together with its demand (messages queued in its connection plus those sent
in the last second), and one Lua script grants it a rate from a pool of 45:

- while nobody has demand, an even split (one process 45, two 22 each,
  twenty 2 each);
- otherwise each member keeps 1 and the rest goes by demand: a process
  with a queue of fifty requests (say, the one that opened the fleet's
  lines) gets most of the rate while the others wait for its answers,
  instead of draining its queue at 2 a second while 43 go unused;
- a grant is taken from what the other members hold now (each member's
  grant is written in the same script), so the grants never add up to
  more than 45 (with more than 45 members, 1 each). A member that needs
  more gets it once the others give theirs back at their next beat, within
  a second.

When Redis is unreachable the process keeps its last share.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .link import RedisLink
from .redis_store import KEY_PREFIX

__all__ = ["MessageShare", "share_of", "demand_of"]

#: Messages per second all processes of a gateway may send together (IB: 50).
BUDGET_PER_S = 45
#: How often members renew; a member silent for ``_GONE_S`` no longer counts.
BEAT_S = 1.0
_GONE_S = 3.0

# KEYS: members (zset), demand (hash), grants (hash). ARGV: owner, gone after s,
# demand, budget. Returns this member's grant (messages per second).
_BEAT = """
local t_ = redis.call('TIME')
local now = tonumber(t_[1]) + tonumber(t_[2]) / 1e6
local owner, budget = ARGV[1], tonumber(ARGV[4])
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))) do
  redis.call('ZREM', KEYS[1], gone)
  redis.call('HDEL', KEYS[2], gone)
  redis.call('HDEL', KEYS[3], gone)
end
redis.call('ZADD', KEYS[1], now, owner)
local demand = tonumber(ARGV[3])
redis.call('HSET', KEYS[2], owner, demand)
local members = redis.call('ZCARD', KEYS[1])
local total = 0
local d = redis.call('HGETALL', KEYS[2])
for i = 2, #d, 2 do total = total + tonumber(d[i]) end
local others = 0
local g = redis.call('HGETALL', KEYS[3])
for i = 1, #g, 2 do
  if g[i] ~= owner then others = others + tonumber(g[i + 1]) end
end
local want
if total <= 0 then
  want = math.floor(budget / members)
else
  want = 1 + math.floor(math.max(0, budget - members) * demand / total)
end
local grant = math.max(1, math.min(want, budget - others))
redis.call('HSET', KEYS[3], owner, grant)
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], 60) end
return grant
"""
# KEYS: members, demand, grants. ARGV: owner.
_LEAVE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
"""


def share_of(members: int, budget: int = BUDGET_PER_S) -> int:
    """One process's messages per second when ``members`` idle processes share ``budget``."""
    return max(1, budget // max(1, members))


def demand_of(client: Any, now: float) -> int:
    """Messages an ib_async client has queued plus those it sent in the last second.

    ib_async keeps both in its throttle (``_msgQ``; ``_timeQ``, send times
    on the event loop's clock, pruned only when it next sends); it has no
    public view of them, so this reads them defensively (0 when absent).
    ``now`` is the event loop's ``time()``.
    """
    queued = getattr(client, "_msgQ", None) or ()
    sent = getattr(client, "_timeQ", None) or ()
    return len(queued) + sum(1 for t in list(sent) if now - t <= 1.0)


class MessageShare:
    """Keeps one connection's ``MaxRequests`` at its share (loop thread)."""

    def __init__(self, url: str, host: str, port: int, owner: str) -> None:
        self.owner = owner
        self.link = RedisLink(url)
        base = f"{KEY_PREFIX}:gw:{host}:{port}"
        self._keys = [f"{base}:members", f"{base}:demand", f"{base}:grants"]
        #: This process's messages per second, as last granted.
        self.share = BUDGET_PER_S
        self._ib: Any = None
        self._timer: asyncio.TimerHandle | None = None

    def follow(self, ib: Any) -> None:
        """Keep ``ib``'s connection at this process's share (loop thread; cheap to repeat)."""
        if ib is self._ib and self._timer is not None:
            return
        self._ib = ib
        if self._timer is not None:
            self._timer.cancel()
        self.beat()

    def beat(self) -> None:
        """Renew the membership and demand, set the granted share, come back in a second."""
        self._timer = None
        ib = self._ib
        loop = asyncio.get_running_loop()
        demand = demand_of(ib.client, loop.time()) if ib is not None else 0
        got = self.link.run(lambda c: self.link.script(_BEAT)(
            keys=self._keys, args=[self.owner, _GONE_S, demand, BUDGET_PER_S]), None)
        if got is not None:
            self.share = int(got)
        if ib is not None:
            ib.client.MaxRequests = self.share
        self._timer = loop.call_later(BEAT_S, self.beat)

    def close(self) -> None:
        """Stop renewing and leave at once (loop thread)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.link.run(lambda c: self.link.script(_LEAVE)(keys=self._keys, args=[self.owner]),
                      None)
        self.link.close()
