"""HeldCache: the client's short caches of answers, never stale across a drop.

Each value is stored with the IB link's epoch it was fetched in (None for
sources other than IB). An IB value is served only while the link is
current and still in that epoch: a drop, a silent link or IB's 1100 moves
the epoch (see :class:`~ib_nice_funcs._link.LinkHealth`), so a price read
just before a drop is never served as current after it.

Threading contract: any thread (one lock).
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import TYPE_CHECKING, Generic, TypeVar

from cachetools import TTLCache

if TYPE_CHECKING:  # pragma: no cover
    from ._link import LinkHealth

__all__ = ["HeldCache"]

V = TypeVar("V")


class HeldCache(Generic[V]):
    """A TTL cache whose IB values expire with the link's epoch as well as with time."""

    def __init__(self, maxsize: int, ttl: float) -> None:
        self._lock = threading.Lock()
        self._data: TTLCache[Hashable, tuple[V, int | None]] = TTLCache(maxsize=maxsize, ttl=ttl)

    def put(self, key: Hashable, value: V, epoch: int | None) -> None:
        """Keep ``value``; ``epoch`` is the IB link's epoch when it was asked (None: not IB)."""
        with self._lock:
            self._data[key] = (value, epoch)

    def get(self, key: Hashable, health: LinkHealth | None) -> V | None:
        """The value if still fresh and, for an IB value, the link current in its epoch."""
        with self._lock:
            entry = self._data.get(key)
        if entry is None:
            return None
        value, epoch = entry
        if epoch is None:
            return value
        if health is None or health.epoch != epoch or not health.current:
            return None
        return value

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
