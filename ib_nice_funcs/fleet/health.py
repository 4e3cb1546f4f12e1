"""One WARNING per process when the fleet's Redis goes away, and one when it is back.

The guard (trading), the shared lines and the shared pacing budget all reach
the same Redis; each reports here, and the process logs each change once,
naming everything it means.
"""

from __future__ import annotations

import logging
import threading

__all__ = ["redis_failed", "redis_ok"]

log = logging.getLogger("ib_nice_funcs")

_lock = threading.Lock()
_down: set[str] = set()


def redis_failed(where: str, exc: BaseException) -> None:
    """Report a failed Redis call; logs the first one since Redis was last reachable."""
    with _lock:
        if where in _down:
            return
        _down.add(where)
    log.warning(
        "%s (the state the agent processes share) is unreachable: %s. Prices and bars go on "
        "per process; opening orders are refused until it is back; closing orders go",
        where, exc)


def redis_ok(where: str) -> None:
    """Report a successful Redis call; logs the first one after a failure."""
    if where not in _down:  # the common case, without the lock
        return
    with _lock:
        if where not in _down:
            return
        _down.discard(where)
    log.warning("%s (the state the agent processes share) is reachable again", where)
