"""RedisStore: the fleet state in Redis, shared by every host that uses the URL.

Through redis-py's asyncio client, on the package's loop thread. Keys, per
account, under ``ib_nice_funcs:fleet:1:<account>:``:

- ``halt``: the halt record;
- ``risk``: the account-wide risk lock (redis-py's ``Lock``, with a lease:
  a holder that dies is passed over when its lease runs out);
- ``claim:<client order id>``: who placed an id (``SET NX``, kept 3 days);
- ``working``: a hash of the processes' opening orders still counted;
- ``day:<YYYY-MM-DD>``: the day's start net liquidation (``SET NX``).

Every failure to reach Redis becomes FleetUnavailableError within the
socket timeout (1 s), so the guard can fail safe.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from ..errors import FleetUnavailableError
from .state import Claim, Halt, Reservation, account_slug, decode, encode
from .store import HALT_UNREADABLE, RiskLockBusyError

__all__ = ["RedisStore", "KEY_PREFIX", "redacted"]

log = logging.getLogger("ib_nice_funcs")

#: Every key of this format starts so; another format's keys are never read.
KEY_PREFIX = "ib_nice_funcs:fleet:1"
#: Seconds to connect and to wait for one answer.
SOCKET_TIMEOUT_S = 1.0
_CLAIM_TTL_S = 3 * 86400
_DAY_TTL_S = 4 * 86400
_WORKING_TTL_S = 86400
#: How often a waiter for the risk lock asks again.
_LOCK_POLL_S = 0.002


class RedisStore:
    """The fleet state of every process that shares ``url``; see the module docstring."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.where = f"Redis at {redacted(url)}"
        self._client: Any = None
        self._warned_garbage: set[str] = set()

    def _redis(self) -> Any:
        if self._client is None:
            try:
                import redis.asyncio as aioredis
            except ImportError:
                raise FleetUnavailableError(
                    "redis_url is set but redis-py is not installed: "
                    "pip install 'ib_nice_funcs[fleet]' (or pip install redis)") from None
            self._client = aioredis.from_url(
                self.url, socket_connect_timeout=SOCKET_TIMEOUT_S,
                socket_timeout=SOCKET_TIMEOUT_S, decode_responses=True)
        return self._client

    def _key(self, account: str, *parts: str) -> str:
        return ":".join((KEY_PREFIX, account_slug(account), *parts))

    @contextlib.asynccontextmanager
    async def _reaching(self, what: str) -> AsyncIterator[None]:
        """Map redis-py's failures to FleetUnavailableError naming ``what``."""
        from redis.exceptions import RedisError

        try:
            yield
        except (RedisError, OSError) as exc:
            raise FleetUnavailableError(f"{self.where}: {what} failed: {exc}") from exc

    def _garbage(self, key: str) -> None:
        if key not in self._warned_garbage:
            self._warned_garbage.add(key)
            log.warning("%s: the value of %s is not this version's record; it is ignored "
                        "(never trusted for risk)", self.where, key)

    # -- FleetStore --------------------------------------------------------------

    async def read_halt(self, account: str) -> Halt | None:
        key = self._key(account, "halt")
        async with self._reaching("reading the halt"):
            text = await self._redis().get(key)
        if text is None:
            return None
        halt = decode("halt", text)
        if isinstance(halt, Halt):
            return halt
        self._garbage(key)
        return HALT_UNREADABLE

    async def write_halt(self, account: str, halt: Halt) -> None:
        key = self._key(account, "halt")
        async with self._reaching("latching the halt"):
            client = self._redis()
            if not await client.set(key, encode(halt), nx=True):
                if not isinstance(decode("halt", await client.get(key)), Halt):
                    await client.set(key, encode(halt))  # garbage: replaced

    async def clear_halt(self, account: str) -> Halt | None:
        key = self._key(account, "halt")
        async with self._reaching("lifting the halt"):
            text = await self._redis().getdel(key)
        lifted = decode("halt", text)
        return lifted if isinstance(lifted, Halt) else None

    @contextlib.asynccontextmanager
    async def risk_lock(self, account: str, lease_s: float, wait_s: float) -> AsyncIterator[None]:
        from redis.exceptions import LockError

        lock = self._redis().lock(self._key(account, "risk"), timeout=lease_s,
                                  sleep=_LOCK_POLL_S, blocking_timeout=wait_s,
                                  thread_local=False)
        async with self._reaching("taking the risk lock"):
            got = await lock.acquire()
        if not got:
            raise RiskLockBusyError(
                f"{self.where}: the account-wide risk lock stayed held by another process for "
                f"{wait_s:g} s; the opening order was not sent. Call again")
        try:
            yield
        finally:
            try:
                async with self._reaching("releasing the risk lock"):
                    await lock.release()
            except LockError:
                log.warning("%s: the risk lock's lease (%g s) ran out before it was released",
                            self.where, lease_s)

    async def claim(self, account: str, client_order_id: str, claim: Claim,
                    replace: bool = False) -> Claim | None:
        key = self._key(account, "claim", client_order_id)
        async with self._reaching("claiming a client order id"):
            client = self._redis()
            if await client.set(key, encode(claim), nx=not replace, ex=_CLAIM_TTL_S):
                return None
            text = await client.get(key)
        held = decode("claim", text)
        if isinstance(held, Claim) and held.owner != claim.owner:
            return held
        if not isinstance(held, Claim):
            self._garbage(key)
        async with self._reaching("claiming a client order id"):
            await self._redis().set(key, encode(claim), ex=_CLAIM_TTL_S)
        return None

    async def reserve(self, account: str, client_order_id: str, reservation: Reservation
                      ) -> None:
        key = self._key(account, "working")
        async with self._reaching("recording a working order"):
            async with self._redis().pipeline(transaction=True) as pipe:
                pipe.hset(key, client_order_id, encode(reservation))
                pipe.expire(key, _WORKING_TTL_S)
                await pipe.execute()

    async def release(self, account: str, client_order_id: str) -> None:
        async with self._reaching("forgetting a working order"):
            await self._redis().hdel(self._key(account, "working"), client_order_id)

    async def reservations(self, account: str) -> list[Reservation]:
        key = self._key(account, "working")
        async with self._reaching("reading the working orders"):
            texts = await self._redis().hgetall(key)
        out = []
        for text in texts.values():
            held = decode("reservation", text)
            if isinstance(held, Reservation):
                out.append(held)
            else:
                self._garbage(key)
        return out

    async def day_start(self, account: str, day: str, net_liquidation: float) -> float:
        key = self._key(account, "day", day)
        async with self._reaching("reading the day's start value"):
            client = self._redis()
            if await client.set(key, encode(float(net_liquidation)), nx=True, ex=_DAY_TTL_S):
                return float(net_liquidation)
            text = await client.get(key)
        stored = decode("day_start", text)
        if isinstance(stored, float):
            return stored
        self._garbage(key)
        return float(net_liquidation)

    async def read_day_start(self, account: str, day: str) -> float | None:
        key = self._key(account, "day", day)
        async with self._reaching("reading the day's start value"):
            text = await self._redis().get(key)
        stored = decode("day_start", text)
        if text is not None and not isinstance(stored, float):
            self._garbage(key)
        return stored if isinstance(stored, float) else None

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url
