"""What ``ib-nice-funcs doctor`` reports about the fleet: where the shared state is,
whether it answers, and whether the account is halted. Blocks up to ``timeout``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, NamedTuple

from ..errors import FleetUnavailableError
from .state import halt_message

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Settings

__all__ = ["FleetStatus", "fleet_status"]


class FleetStatus(NamedTuple):
    """``status`` is ``ok``, ``warn`` or ``fail``, as a doctor check."""

    status: str
    detail: str
    fix: str = ""


def fleet_status(settings: Settings, account: str | None, timeout: float) -> FleetStatus:
    """Reach the fleet's store, read the account's halt, say what is shared."""
    from .store import open_store

    store = open_store(settings)

    async def probe() -> object:
        try:
            if account is None:
                return await store.read_halt("_doctor_")  # reachability only
            return await store.read_halt(account)
        finally:
            await store.close()

    if settings.redis_url:
        shared = "quotes, bars, pacing, the halt, the risk lock and order ids"
        down_fix = ("start Redis (redis-server) or fix IB_NICE_FUNCS_REDIS_URL; while it is "
                    "unreachable opening orders are refused, data goes on per process")
    else:
        shared = ("the halt, the risk lock and order ids with this host's processes (set "
                  "IB_NICE_FUNCS_REDIS_URL to share quotes, bars and pacing across hosts too)")
        down_fix = "set IB_NICE_FUNCS_FLEET_DIR to a writable directory"
    try:
        halt = asyncio.run(asyncio.wait_for(probe(), timeout))
    except (FleetUnavailableError, asyncio.TimeoutError, TimeoutError) as exc:
        return FleetStatus("fail", f"{store.where}: unreachable ({exc})", down_fix)
    if halt is not None and account is not None:
        return FleetStatus("warn", halt_message(halt, account),  # type: ignore[arg-type]
                           "ib-nice-funcs resume (or resume_trading()) once it is safe")
    return FleetStatus("ok", f"{store.where}: shares {shared}")
