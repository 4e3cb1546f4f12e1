"""FleetStore: where the processes of one account keep what they share.

Two kinds, chosen in one place (:func:`~.stores.open_store`): files in a directory of
this host (:class:`~.local.LocalStore`, always available) and Redis
(:class:`~.redis_store.RedisStore`, with ``redis_url``). Both are used from
the package's event-loop thread only; every method is a coroutine that
finishes within its store's timeout or raises
:class:`~ib_nice_funcs.errors.FleetUnavailableError`.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from ..errors import FleetUnavailableError
from .state import Claim, Halt, Reservation

__all__ = ["FleetStore", "HALT_UNREADABLE", "RiskLockBusyError"]

#: What a store returns for a halt record it cannot read: treated as a halt
#: (risk state is never trusted from garbage); resume_trading() rewrites it.
HALT_UNREADABLE = Halt(by="(unreadable record)", at=0.0,
                       reason="the shared halt record is unreadable (another version?)")


class RiskLockBusyError(FleetUnavailableError):
    """Another process held the risk lock for the whole wait (the store itself is fine)."""


class FleetStore(Protocol):
    """What the guard needs of a store; all methods raise FleetUnavailableError."""

    #: Human-readable: where the state lives (for messages and doctor).
    where: str

    async def read_halt(self, account: str) -> Halt | None:
        """The account's halt, None when trading is allowed."""

    async def write_halt(self, account: str, halt: Halt) -> None:
        """Latch a halt (an existing one is kept: the first reason stays)."""

    async def clear_halt(self, account: str) -> Halt | None:
        """Lift the halt; returns the one lifted."""

    def risk_lock(self, account: str, lease_s: float, wait_s: float
                  ) -> AbstractAsyncContextManager[None]:
        """The account-wide lock around check-and-send of opening orders.

        ``lease_s``: a holder that dies is passed over after at most this
        long. ``wait_s``: how long to wait for it.
        """

    async def claim(self, account: str, client_order_id: str, claim: Claim,
                    replace: bool = False) -> Claim | None:
        """Take ``client_order_id``; None when it is ours now, else the holder's claim.

        ``replace``: take it even if claimed (the caller found the claim stale).
        """

    async def reserve(self, account: str, client_order_id: str, reservation: Reservation
                      ) -> None:
        """Record an opening order working at the gateway (kept at most a day)."""

    async def release(self, account: str, client_order_id: str) -> None:
        """Forget a reservation (its order ended)."""

    async def reservations(self, account: str) -> list[Reservation]:
        """Every process's reservations (unreadable ones are left out)."""

    async def day_start(self, account: str, day: str, net_liquidation: float) -> float:
        """The day's start-of-day net liquidation: the first value any process stored."""

    async def read_day_start(self, account: str, day: str) -> float | None:
        """The day's stored start-of-day net liquidation, None when none is (stores nothing)."""

    async def close(self) -> None:
        """Release connections (idempotent)."""
