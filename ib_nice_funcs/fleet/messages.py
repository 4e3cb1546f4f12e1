"""MessageShare: IB's 50 messages per second, split among the processes of a gateway.

ib_async throttles each connection to ``MaxRequests`` (45) messages per
second. Twenty agent processes on one gateway would each take that whole
allowance. With ``redis_url`` set, each process renews its membership every
second (a sorted set dated by Redis's clock; members silent for 3 s leave)
and sets its connection's ``MaxRequests`` to its share of the 45: one
process keeps all 45, two get 22 each, twenty get 2 each (at least 1).
When Redis is unreachable the process keeps its last share.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .link import RedisLink
from .redis_store import KEY_PREFIX

__all__ = ["MessageShare", "share_of"]

#: Messages per second all processes of a gateway may send together (IB: 50).
BUDGET_PER_S = 45
#: How often members renew; a member silent for ``_GONE_S`` no longer counts.
BEAT_S = 1.0
_GONE_S = 3.0

# KEYS[1] members. ARGV: owner, gone after s. Returns the number of live members.
_BEAT = """
local t_ = redis.call('TIME')
local now = tonumber(t_[1]) + tonumber(t_[2]) / 1e6
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('EXPIRE', KEYS[1], 60)
return redis.call('ZCARD', KEYS[1])
"""


def share_of(members: int, budget: int = BUDGET_PER_S) -> int:
    """One process's messages per second when ``members`` processes share ``budget``."""
    return max(1, budget // max(1, members))


class MessageShare:
    """Keeps one connection's ``MaxRequests`` at its share (loop thread)."""

    def __init__(self, url: str, host: str, port: int, owner: str) -> None:
        self.owner = owner
        self.link = RedisLink(url)
        self._key = f"{KEY_PREFIX}:gw:{host}:{port}:members"
        self.members = 1
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
        """Renew the membership, set the connection's share, and come back in a second."""
        self._timer = None
        got = self.link.run(lambda c: self.link.script(_BEAT)(
            keys=[self._key], args=[self.owner, _GONE_S]), None)
        if got is not None:
            self.members = int(got)
        ib = self._ib
        if ib is not None:
            ib.client.MaxRequests = share_of(self.members)
        self._timer = asyncio.get_running_loop().call_later(BEAT_S, self.beat)

    def close(self) -> None:
        """Stop renewing and leave at once (loop thread)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.link.run(lambda c: c.zrem(self._key, self.owner), None)
        self.link.close()
