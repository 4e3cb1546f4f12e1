"""The one place that chooses the fleet's store (files on this host, or Redis).

Apart from :mod:`.store` (the protocol and what both stores share), which
:mod:`.local` and :mod:`.redis_store` import: choosing there would close an
import cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Settings
    from .store import FleetStore

__all__ = ["open_store"]


def open_store(settings: Settings) -> FleetStore:
    """The store ``settings`` ask for: Redis with ``redis_url``, else this host's files.

    Nothing is connected here; the first call connects.
    """
    if settings.redis_url:
        from .redis_store import RedisStore

        return RedisStore(settings.redis_url)
    from .local import LocalStore

    return LocalStore(settings.fleet_dir)
