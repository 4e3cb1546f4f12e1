"""SharedQuotes: one market-data line per symbol across the processes of a gateway.

With ``redis_url`` set, :class:`~ib_nice_funcs.streaming.Tickers` asks this
object before it opens a line: the process that gets a symbol's line lease
(``SET NX`` with a 3 s lease it renews every half second) streams it and
writes each tick to Redis; every other process reads that shared quote (a
warm ``token_price`` is one Redis ``GET``, no message to IB) and follows it
for its own ``subscribe()`` / ``stream_prices()`` listeners. When the holder
exits or dies its lease runs out and the next process that follows the
symbol takes the line over (within 5 s). Readers mark the symbol wanted, so
the holder keeps a line others read even when it no longer reads it itself.

Keys, per gateway, under ``ib_nice_funcs:fleet:1:gw:<host>:<port>:``:
``line:<symbol>`` (holder), ``quote:<symbol>`` (last tick) and
``want:<symbol>`` (someone reads it). Symbol keys are digests of the
instrument key.

Redis is reached with redis-py's blocking client (loopback round trips of
about 100 us), from the loop thread for lines and ticks and from the
caller's thread for reads. When Redis is unreachable every process streams
for itself (one WARNING) and rejoins when it is back (one WARNING).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from .health import redis_failed, redis_ok
from .redis_store import KEY_PREFIX, redacted
from .state import decode_quote, digest, encode_quote

__all__ = ["SharedQuotes", "LEASE_MS", "RENEW_S"]

log = logging.getLogger("ib_nice_funcs")

#: A line's lease: a holder that stops renewing loses it after this long.
LEASE_MS = 3000
#: How often holders renew their leases and followers read the shared quotes.
RENEW_S = 0.5
#: Shared quotes expire from Redis after this long without a tick.
_QUOTE_TTL_S = 600
#: A reader marks a symbol wanted at most this often, for this long.
_WANT_EVERY_S = 30.0
_WANT_TTL_S = 600
_TIMEOUT_S = 0.5
_RETRY_S = 5.0

# KEYS[1] line. ARGV: owner, lease ms. 1 = ours (taken or renewed), 0 = another's.
_ACQUIRE = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if held then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
# KEYS[1] line. ARGV: owner. Deletes only our own lease.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class SharedQuotes:
    """The shared lines and quotes of one gateway; thread-safe."""

    def __init__(self, url: str, host: str, port: int, owner: str) -> None:
        self.url = url
        self.owner = owner
        self._prefix = f"{KEY_PREFIX}:gw:{host}:{port}"
        self._client: Any = None
        self._acquire: Any = None
        self._release: Any = None
        self._lock = threading.Lock()
        self._down_until = 0.0
        self.where = f"Redis at {redacted(url)}"
        self._wanted_at: dict[Hashable, float] = {}
        self._warned_garbage = False

    # -- plumbing -----------------------------------------------------------------

    def _redis(self) -> Any:
        with self._lock:
            if self._client is None:
                import redis

                self._client = redis.Redis.from_url(
                    self.url, socket_connect_timeout=_TIMEOUT_S, socket_timeout=_TIMEOUT_S)
                self._acquire = self._client.register_script(_ACQUIRE)
                self._release = self._client.register_script(_RELEASE)
            return self._client

    def _key(self, kind: str, key: Hashable) -> str:
        return f"{self._prefix}:{kind}:{digest(key)}"

    @property
    def available(self) -> bool:
        """False while Redis is known to be unreachable (every process streams alone)."""
        return time.monotonic() >= self._down_until

    def _failed(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + _RETRY_S
        redis_failed(self.where, exc)  # meanwhile every process streams its own lines

    def _ok(self) -> None:
        redis_ok(self.where)

    def _run(self, what: Any, fallback: Any) -> Any:
        """``what(client)``, or ``fallback`` when Redis is unreachable."""
        if not self.available:
            return fallback
        from redis.exceptions import RedisError

        try:
            got = what(self._redis())
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return fallback
        self._ok()
        return got

    def _quote(self, text: Any) -> tuple[float, float] | None:
        quote = decode_quote(text)
        if quote is None and text is not None and not self._warned_garbage:
            self._warned_garbage = True
            log.warning("a shared quote in Redis is not this version's record; it is ignored")
        return quote

    # -- readers (any thread) --------------------------------------------------------

    def fresh(self, key: Hashable, stale_after: float) -> float | None:
        """The shared quote of ``key`` if its tick is under ``stale_after`` s old; one round trip."""
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

        text = self._run(read, None)
        if want and self.available:
            self._wanted_at[key] = now
        quote = self._quote(text)
        if quote is None or time.time() - quote[1] > stale_after:
            return None
        return quote[0]

    # -- holders and followers (loop thread) ------------------------------------------------

    def acquire(self, key: Hashable) -> bool:
        """Take (or renew) the line of ``key``; True when this process is to stream it."""
        return bool(self._run(
            lambda c: self._acquire(keys=[self._key("line", key)], args=[self.owner, LEASE_MS]),
            True))

    def release(self, key: Hashable) -> None:
        """Give up the line of ``key`` (if ours)."""
        self._run(lambda c: self._release(keys=[self._key("line", key)], args=[self.owner]),
                  None)

    def renew(self, keys: Sequence[Hashable]) -> set[Hashable]:
        """Renew the leases of the lines this process streams; returns those another took."""
        if not keys:
            return set()

        def run(client: Any) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                self._acquire(keys=[self._key("line", key)], args=[self.owner, LEASE_MS],
                              client=pipe)
            return pipe.execute()

        got = self._run(run, [1] * len(keys))
        return {key for key, ok in zip(keys, got) if not ok}

    def publish(self, ticks: Iterable[tuple[Hashable, float, float]]) -> None:
        """Write the latest ``(key, price, epoch)`` ticks of the lines this process streams."""

        def run(client: Any) -> None:
            pipe = client.pipeline(transaction=False)
            for key, price, epoch in ticks:
                pipe.set(self._key("quote", key), encode_quote(price, epoch), ex=_QUOTE_TTL_S)
            pipe.execute()

        self._run(run, None)

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

        got = self._run(run, None)
        if got is None:
            return {key: (None, False) for key in keys}
        return {key: (self._quote(got[2 * k]), bool(got[2 * k + 1]))
                for k, key in enumerate(keys)}

    def wanted(self, key: Hashable) -> bool:
        """Whether another process read ``key``'s shared quote lately (keep its line)."""
        return bool(self._run(lambda c: c.exists(self._key("want", key)), False))

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing must not raise
                log.debug("closing the shared-quotes Redis client failed", exc_info=True)
