"""RedisLink: the blocking redis-py connection the data side of the fleet shares.

Shared lines (:mod:`.quotes`), bars (:mod:`.bars`) and pacing (:mod:`.pacing`)
each hold one. :meth:`RedisLink.run` runs one call and returns a fallback
instead of raising when Redis is unreachable: the process then works alone
for a few seconds before it asks Redis again (one WARNING each way, see
:mod:`.health`). Thread-safe (redis-py's client pools its connections).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .health import redis_failed, redis_ok
from .redis_store import redacted

__all__ = ["RedisLink", "ACQUIRE_LEASE", "RELEASE_LEASE"]

log = logging.getLogger("ib_nice_funcs")
T = TypeVar("T")

#: Seconds to connect and to wait for an answer before working alone.
TIMEOUT_S = 0.5
#: While Redis is unreachable, how often it is asked again.
RETRY_S = 5.0

#: KEYS[1] lease. ARGV: owner, lease ms. 1 = ours (taken or renewed), 0 = another's.
ACQUIRE_LEASE = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if held then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
#: KEYS[1] lease. ARGV: owner. Deletes only the owner's own lease.
RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisLink:
    """One blocking client for ``url``, with the lease scripts registered."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.where = f"Redis at {redacted(url)}"
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._down_until = 0.0

    @property
    def available(self) -> bool:
        """False while Redis is known to be unreachable (the process works alone)."""
        return time.monotonic() >= self._down_until

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import redis

                self._client = redis.Redis.from_url(
                    self.url, socket_connect_timeout=TIMEOUT_S, socket_timeout=TIMEOUT_S)
            return self._client

    def script(self, source: str) -> Any:
        """A registered Lua script (call it with ``keys=``, ``args=``, ``client=``)."""
        found = self._scripts.get(source)
        if found is None:
            found = self._scripts[source] = self.client().register_script(source)
        return found

    def run(self, call: Callable[[Any], T], fallback: T) -> T:
        """``call(client)``, or ``fallback`` when Redis is unreachable (never raises for that)."""
        if not self.available:
            return fallback
        from redis.exceptions import RedisError

        try:
            got = call(self.client())
        except (RedisError, OSError) as exc:
            self._down_until = time.monotonic() + RETRY_S
            redis_failed(self.where, exc)
            return fallback
        redis_ok(self.where)
        return got

    def acquire(self, lease_key: str, owner: str, lease_ms: int) -> bool:
        """Take or renew ``lease_key`` for ``owner``; True when alone (Redis unreachable)."""
        return bool(self.run(
            lambda c: self.script(ACQUIRE_LEASE)(keys=[lease_key], args=[owner, lease_ms]),
            True))

    def renew(self, lease_keys: Sequence[str], owner: str, lease_ms: int) -> list[bool]:
        """Take or renew each of ``lease_keys`` for ``owner`` in one round trip.

        Returns, per key, whether ``owner`` holds it now (all True when Redis
        is unreachable: a process alone keeps what it has).
        """
        if not lease_keys:
            return []

        def run(client: Any) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            acquire = self.script(ACQUIRE_LEASE)
            for key in lease_keys:
                acquire(keys=[key], args=[owner, lease_ms], client=pipe)
            return pipe.execute()

        return [bool(ok) for ok in self.run(run, [1] * len(lease_keys))]

    def release(self, lease_key: str, owner: str) -> None:
        self.run(lambda c: self.script(RELEASE_LEASE)(keys=[lease_key], args=[owner]), None)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            self._scripts.clear()
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing must not raise
                log.debug("closing the Redis client failed", exc_info=True)
