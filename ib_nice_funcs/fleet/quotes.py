"""SharedQuotes: one market-data line per symbol across the processes of a gateway.

With ``redis_url`` set, :class:`~ib_nice_funcs.streaming.Tickers` asks this
object before it opens a line: the process that gets a symbol's line lease
(``SET NX`` with a 2.5 s lease it renews every half second) streams it and
writes each tick to Redis; every other process reads that shared quote (a
warm ``token_price`` is one Redis ``GET``, no message to IB) and follows it
for its own ``subscribe()`` / ``stream_prices()`` listeners. When the holder
exits or dies its lease runs out and the next process that follows the
symbol takes the line over (within 5 s). Readers mark the symbol wanted, so
the holder keeps a line others read even when it no longer reads it itself.

Keys, per gateway, under ``ib_nice_funcs:fleet:1:gw:<host>:<port>:``:
``line:<symbol>`` (holder), ``quote:<symbol>`` (last tick),
``want:<symbol>`` (someone reads it) and ``asked:<symbol>`` (the last
process that asked a price of IB, for the repeat window: a symbol another
process asked for is streamed at once, not snapshotted by every process).
Symbol keys are digests of the instrument key.

Redis is reached with redis-py's blocking client (loopback round trips of
about 100 us), from the loop thread for lines and ticks and from the
caller's thread for reads. When Redis is unreachable every process streams
for itself (one WARNING) and rejoins when it is back (one WARNING).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from .link import RedisLink
from .redis_store import KEY_PREFIX
from .state import decode_quote, digest, encode_quote

__all__ = ["SharedQuotes", "LEASE_MS", "RENEW_S"]

log = logging.getLogger("ib_nice_funcs")

#: A line's lease: a holder that stops renewing loses it after this long.
LEASE_MS = 2500
#: How often holders renew their leases and followers read the shared quotes.
RENEW_S = 0.5
#: Shared quotes expire from Redis after this long without a tick.
_QUOTE_TTL_S = 600
#: A reader marks a symbol wanted at most this often, for this long.
_WANT_EVERY_S = 30.0
_WANT_TTL_S = 600


# KEYS: the symbols' "asked" keys. ARGV: owner, window s. Returns who asked each
# before ('' for nobody) and marks them asked by the owner.
_ASKED = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('GET', key) or ''
  redis.call('SET', key, ARGV[1], 'EX', ARGV[2])
end
return out
"""


class SharedQuotes:
    """The shared lines and quotes of one gateway; thread-safe."""

    def __init__(self, url: str, host: str, port: int, owner: str) -> None:
        self.owner = owner
        self.link = RedisLink(url)
        self._prefix = f"{KEY_PREFIX}:gw:{host}:{port}"
        self._wanted_at: dict[Hashable, float] = {}
        self._warned_garbage = False

    def _key(self, kind: str, key: Hashable) -> str:
        return f"{self._prefix}:{kind}:{digest(key)}"

    def _quote(self, text: Any) -> tuple[float, float] | None:
        quote = decode_quote(text)
        if quote is None and text is not None and not self._warned_garbage:
            self._warned_garbage = True
            log.warning("a shared quote in Redis is not this version's record; it is ignored")
        return quote

    # -- readers (any thread) --------------------------------------------------------

    def fresh(self, key: Hashable, stale_after: float) -> tuple[float, float] | None:
        """``(price, epoch)`` of ``key``'s shared tick if under ``stale_after`` s old (one GET)."""
        now = time.monotonic()
        want = now - self._wanted_at.get(key, -_WANT_EVERY_S) >= _WANT_EVERY_S
        quote_key = self._key("quote", key)

        def read(client: Any) -> Any:
            if not want:
                return client.get(quote_key)
            pipe = client.pipeline(transaction=False)
            pipe.get(quote_key)
            pipe.set(self._key("want", key), 1, ex=_WANT_TTL_S)
            return pipe.execute()[0]

        text = self.link.run(read, None)
        if want and self.link.available:
            self._wanted_at[key] = now
        quote = self._quote(text)
        if quote is None or time.time() - quote[1] > stale_after:
            return None
        return quote

    # -- holders and followers (loop thread) ------------------------------------------------

    def acquire(self, key: Hashable) -> bool:
        """Take (or renew) the line of ``key``; True when this process is to stream it."""
        return self.link.acquire(self._key("line", key), self.owner, LEASE_MS)

    def release(self, key: Hashable) -> None:
        """Give up the line of ``key`` (if ours)."""
        self.link.release(self._key("line", key), self.owner)

    def renew(self, keys: Sequence[Hashable]) -> set[Hashable]:
        """Renew the leases of the lines this process streams; returns those another took."""
        held = self.link.renew([self._key("line", k) for k in keys], self.owner, LEASE_MS)
        return {key for key, ok in zip(keys, held, strict=True) if not ok}

    def publish(self, ticks: Iterable[tuple[Hashable, float, float]]) -> None:
        """Write the latest ``(key, price, epoch)`` ticks of the lines this process streams."""

        def run(client: Any) -> None:
            pipe = client.pipeline(transaction=False)
            for key, price, epoch in ticks:
                pipe.set(self._key("quote", key), encode_quote(price, epoch), ex=_QUOTE_TTL_S)
            pipe.execute()

        self.link.run(run, None)

    def follow(self, keys: Sequence[Hashable]
               ) -> dict[Hashable, tuple[tuple[float, float] | None, bool]]:
        """For symbols others stream: ``key -> (latest (price, epoch) or None, line held)``."""
        if not keys:
            return {}

        def run(client: Any) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.get(self._key("quote", key))
                pipe.exists(self._key("line", key))
            return pipe.execute()

        got = self.link.run(run, None)
        if got is None:
            return {key: (None, False) for key in keys}
        return {key: (self._quote(got[2 * k]), bool(got[2 * k + 1]))
                for k, key in enumerate(keys)}

    def wanted(self, key: Hashable) -> bool:
        """Whether another process read ``key``'s shared quote lately (keep its line)."""
        return bool(self.link.run(lambda c: c.exists(self._key("want", key)), False))

    def asked_before(self, keys: Sequence[Hashable], window: float) -> set[Hashable]:
        """Of ``keys``, those another process asked a price of within ``window`` s; marks all asked.

        One atomic script for all of them: of processes asking at the same
        moment, exactly one finds a symbol not asked before.
        """

        def run(client: Any) -> list[Any]:
            return self.link.script(_ASKED)(
                keys=[self._key("asked", key) for key in keys],
                args=[self.owner, max(1, int(window))])

        got = self.link.run(run, None)
        if got is None:
            return set()
        mine = {b"", self.owner.encode()}
        return {key for key, before in zip(keys, got, strict=True) if before not in mine}

    def close(self) -> None:
        self.link.close()
