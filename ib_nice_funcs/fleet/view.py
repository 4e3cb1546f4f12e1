"""What the fleet state of an account says now, for a watcher (the dashboard). Read only.

:func:`read_fleet` opens the configured store (this host's files, or Redis
with ``redis_url``), reads the account's halt latch, the day's shared
daily-loss baseline and the processes with opening orders working, and
closes the store again. It writes nothing: the halt is latched only by
``emergency_stop()`` and the baseline only by an agent's risk check. It runs
its own short event loop (as ``doctor`` does), so it is called from any
thread except the package's loop thread; the store is never shared with the
trading layer's.

:func:`owner_alive` tells whether a process named in a record still runs.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, TypedDict

from ..errors import FleetUnavailableError
from .state import Halt, halt_message, owner_pid

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Settings
    from .store import FleetStore

__all__ = ["FleetView", "HaltView", "ProcessView", "RESUME_HINT", "owner_alive", "read_fleet"]

#: Every way to lift the account's halt, for a page or a message.
RESUME_HINT = ("resume_trading() in any agent process, 'ib-nice-funcs resume', or the "
               "dashboard's Resume button")


class HaltView(TypedDict):
    """The account's halt latch as a watcher shows it."""

    #: The latching process as the records name it: ``host:pid:tag``.
    by: str
    host: str
    pid: int | None
    #: Whether that process still runs (None: another host, or unreadable).
    alive: bool | None
    #: Whether it is the process reading (e.g. the dashboard's own stop).
    this_process: bool
    #: UTC epoch seconds.
    at: float
    reason: str
    #: The sentence an agent's refused opening order carries.
    message: str
    resume: str


class ProcessView(TypedDict):
    """A process the fleet state names (it has opening orders working)."""

    owner: str
    host: str
    pid: int | None
    alive: bool | None
    this_process: bool
    working_orders: int


class FleetView(TypedDict):
    """One read of an account's fleet state (``error``: why it could not be read)."""

    where: str
    account: str
    #: The trading day the baseline is for (``YYYY-MM-DD``, New York).
    day: str
    error: str | None
    halt: HaltView | None
    #: The day's start net liquidation every agent's daily-loss check measures
    #: from (the first value any process stored); None: no process looked yet.
    day_start: float | None
    processes: list[ProcessView]


def owner_alive(owner: str) -> bool | None:
    """Whether the process ``owner`` (``host:pid:tag``) still runs; None: another host."""
    pid = owner_pid(owner)
    if pid is None:
        return None
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _is_this_process(owner: str) -> bool:
    return owner_pid(owner) == os.getpid()


def _halt_view(halt: Halt, account: str) -> HaltView:
    host = halt.by.partition(":")[0]
    return HaltView(by=halt.by, host=host, pid=owner_pid(halt.by, host),
                    alive=owner_alive(halt.by), this_process=_is_this_process(halt.by),
                    at=halt.at, reason=halt.reason, message=halt_message(halt, account),
                    resume=RESUME_HINT)


async def _read(store: FleetStore, account: str, day: str) -> FleetView:
    try:
        halt = await store.read_halt(account)
        day_start = await store.read_day_start(account, day)
        working = await store.reservations(account)
    finally:
        await store.close()
    counts: dict[str, int] = {}
    for reservation in working:
        counts[reservation.owner] = counts.get(reservation.owner, 0) + 1
    processes = []
    for owner, count in sorted(counts.items()):
        host = owner.partition(":")[0]
        processes.append(ProcessView(owner=owner, host=host, pid=owner_pid(owner, host),
                                     alive=owner_alive(owner),
                                     this_process=_is_this_process(owner),
                                     working_orders=count))
    return FleetView(where=store.where, account=account, day=day, error=None,
                     halt=None if halt is None else _halt_view(halt, account),
                     day_start=day_start, processes=processes)


def read_fleet(settings: Settings, account: str, day: str, timeout: float) -> FleetView:
    """The account's fleet state now; never raises for an unreachable store.

    Blocks up to ``timeout`` seconds (Redis: one connection, three reads).

    Args:
        settings: Which store (``redis_url``, else ``fleet_dir``).
        account: The IB account id.
        day: The trading day (``YYYY-MM-DD``) whose baseline to read.

    Returns:
        A :class:`FleetView`; ``error`` names why it could not be read (then
        ``halt`` is None and says nothing: the caller must not show "trading").

    Raises:
        ValueError: ``account`` is empty.
    """
    from .state import account_slug
    from .stores import open_store

    account_slug(account)  # ValueError before anything is opened
    store = open_store(settings)
    try:
        return asyncio.run(asyncio.wait_for(_read(store, account, day), timeout))
    except (FleetUnavailableError, asyncio.TimeoutError, TimeoutError) as exc:
        cause = str(exc) or f"no answer in {timeout:g} s"
        return FleetView(where=store.where, account=account, day=day,
                         error=f"{store.where}: unreachable ({cause})", halt=None,
                         day_start=None, processes=[])
