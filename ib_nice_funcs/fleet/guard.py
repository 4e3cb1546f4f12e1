"""FleetGuard: what the trading layer asks of the fleet, on the loop thread.

One per Trader. It keeps the store choice, this process's name, a halt
latched here (held even when the shared store is unreachable), and the
"shared state is back / gone" WARNINGs (one each way). The trading layer
calls it at four points: :meth:`opening` around check-and-send of an order
that adds risk, :meth:`claim` before an id the caller chose is sent,
:meth:`day_start` for the daily-loss baseline, and :meth:`halt` /
:meth:`resume` from ``emergency_stop()`` / ``resume_trading()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ..errors import FleetUnavailableError, TradingHaltedError
from .health import redis_failed, redis_ok
from .state import (
    Claim,
    Halt,
    Reservation,
    WorkingOrder,
    claim_is_stale,
    claimed_message,
    halt_message,
    owner_id,
)
from .store import RiskLockBusyError
from .view import owner_alive

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Settings
    from .store import FleetStore

__all__ = ["FleetGuard"]

log = logging.getLogger("ib_nice_funcs")

#: A risk-lock holder that dies is passed over after this long (Redis lease;
#: files are released by the OS at once).
LEASE_S = 15.0
#: A working order is counted for at most a day (DAY orders end by then; a
#: crashed owner's GTC order is then seen as a position once it fills).
RESERVATION_MAX_S = 86400.0
#: After a fill, an order stays counted this long: every process's position
#: view (IB's position updates) includes the fill by then. Counting it twice
#: meanwhile errs on the safe side.
FILL_VISIBLE_S = 2.0


class FleetGuard:
    """The trading layer's door to the fleet state (loop thread only)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.owner = owner_id()
        self._store: FleetStore | None = None
        #: A halt latched here that the store has not taken yet (it was unreachable).
        self._unsynced_halt: Halt | None = None
        #: This process's opening orders the others count, by client order id.
        self._mine: dict[str, Reservation] = {}
        self._ending: set[asyncio.Task[None]] = set()
        self._down: str | None = None  # the last failure, while the store is unreachable

    @property
    def store(self) -> FleetStore:
        if self._store is None:
            from .stores import open_store

            self._store = open_store(self.settings)
        return self._store

    # -- availability ------------------------------------------------------------

    def _went_down(self, exc: FleetUnavailableError) -> None:
        if self.settings.redis_url:
            redis_failed(self.store.where, exc)
        elif self._down is None:
            log.warning("the state shared by the agent processes (%s) is unreachable: %s. "
                        "Opening orders are refused until it is back; closing orders go",
                        self.store.where, exc)
        self._down = str(exc)

    def _came_back(self) -> None:
        if self.settings.redis_url:
            redis_ok(self.store.where)
        elif self._down is not None:
            log.warning("the state shared by the agent processes (%s) is reachable again",
                        self.store.where)
        self._down = None

    # -- opening orders ------------------------------------------------------------

    async def check_halt(self, account: str) -> None:
        """Raise TradingHaltedError when the account is halted.

        The store decides; a halt latched here while the store was
        unreachable is written to it once it is back, and holds here meanwhile.

        Raises:
            TradingHaltedError: halted.
            FleetUnavailableError: the store cannot say (fail safe: refuse).
        """
        try:
            if self._unsynced_halt is not None:
                await self.store.write_halt(account, self._unsynced_halt)
                self._unsynced_halt = None
            halt = await self.store.read_halt(account)
        except FleetUnavailableError as exc:
            self._went_down(exc)
            if self._unsynced_halt is not None:
                raise TradingHaltedError(halt_message(self._unsynced_halt, account)) from None
            raise
        self._came_back()
        if halt is not None:
            raise TradingHaltedError(halt_message(halt, account))

    @contextlib.asynccontextmanager
    async def opening(self, account: str, wait_s: float) -> AsyncIterator[None]:
        """Hold the account-wide risk lock around check-and-send of an opening order.

        Blocks (without blocking the loop) up to ``wait_s`` for the lock.

        Raises:
            TradingHaltedError: the account is halted (nothing sent).
            FleetUnavailableError: the lock cannot be had (nothing sent).
        """
        await self.check_halt(account)
        try:
            lock = self.store.risk_lock(account, LEASE_S, max(0.05, wait_s))
            await lock.__aenter__()
        except RiskLockBusyError:
            raise
        except FleetUnavailableError as exc:
            self._went_down(exc)
            raise
        try:
            await self.check_halt(account)  # latched while this process waited
            yield
        finally:
            try:
                await lock.__aexit__(None, None, None)
            except FleetUnavailableError as exc:
                self._went_down(exc)  # the lease frees it

    async def working_elsewhere(self, account: str) -> list[WorkingOrder]:
        """The other processes' working opening orders (call inside :meth:`opening`).

        Raises:
            FleetUnavailableError: the store cannot say (nothing may be sent).
        """
        try:
            held = await self.store.reservations(account)
        except FleetUnavailableError as exc:
            self._went_down(exc)
            raise
        now = time.time()
        return [r.working() for r in held
                if r.owner != self.owner and now - r.at < RESERVATION_MAX_S and r.counts(now)
                and owner_alive(r.owner) is not False]

    async def reserve(self, account: str, client_order_id: str, symbol: str, side: str,
                      value_usd: float) -> None:
        """Show one of this process's working opening orders to the others."""
        reservation = Reservation(self.owner, time.time(), symbol, side, max(0.0, value_usd))
        self._mine[client_order_id] = reservation
        try:
            await self.store.reserve(account, client_order_id, reservation)
        except FleetUnavailableError as exc:
            self._went_down(exc)

    def order_ended_soon(self, account: str, client_order_id: str, filled: bool) -> None:
        """:meth:`order_ended` as a task of this guard (cancelled by :meth:`close`)."""
        task = asyncio.get_running_loop().create_task(
            self.order_ended(account, client_order_id, filled))
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    async def order_ended(self, account: str, client_order_id: str, filled: bool) -> None:
        """One of this process's opening orders ended: the others stop counting it.

        After a fill it still counts for :data:`FILL_VISIBLE_S` (written to the
        store first, so a process that exits meanwhile leaves nothing behind
        that counts longer).
        """
        reservation = self._mine.pop(client_order_id, None)
        try:
            if filled and reservation is not None:
                await self.store.reserve(account, client_order_id, dataclasses.replace(
                    reservation, until=time.time() + FILL_VISIBLE_S))
                await asyncio.sleep(FILL_VISIBLE_S)
            await self.store.release(account, client_order_id)
        except FleetUnavailableError as exc:
            self._went_down(exc)

    # -- client order ids ------------------------------------------------------------

    async def claim(self, account: str, client_order_id: str) -> str | None:
        """Take ``client_order_id`` for this process before it is sent.

        The caller has already looked for the id at the gateway (every
        client's open orders and executions) and found nothing.

        Returns:
            None: the id is ours (or the shared state is unreachable: this
            process's own ledger still guards it); else why nothing may be sent.
        """
        mine = Claim(self.owner, time.time())
        try:
            held = await self.store.claim(account, client_order_id, mine)
            if held is None:
                return None
            if not claim_is_stale(held, time.time(), owner_alive(held.owner)):
                return claimed_message(client_order_id, held)
            log.warning("client order id %r was claimed by process %s, whose order never "
                        "reached the gateway; placing it here", client_order_id, held.owner)
            await self.store.claim(account, client_order_id, mine, replace=True)
            return None
        except FleetUnavailableError as exc:
            self._went_down(exc)
            return None

    # -- daily loss baseline -----------------------------------------------------------

    async def day_start(self, account: str, day: str, net_liquidation: float) -> float:
        """The fleet's start-of-day net liquidation (``net_liquidation`` if first, or alone)."""
        try:
            return await self.store.day_start(account, day, net_liquidation)
        except FleetUnavailableError as exc:
            self._went_down(exc)
            return net_liquidation

    # -- halt ------------------------------------------------------------------------------

    async def halt(self, account: str, reason: str = "emergency_stop()") -> None:
        """Latch the halt for every process; while the store is unreachable it holds here."""
        # Dated by the code's clock (the one the simulator shares in tests), as the
        # journal dates its rows; leases and reservations keep the wall clock.
        halt = Halt(self.owner, float(self.settings.clock()), reason)
        try:
            await self.store.write_halt(account, halt)
        except FleetUnavailableError as exc:
            self._went_down(exc)
            self._unsynced_halt = halt
            return
        log.warning("trading on account %s is halted for every agent process (%s); "
                    "resume_trading() or 'ib-nice-funcs resume' lifts it", account, reason)

    async def resume(self, account: str) -> Halt | None:
        """Lift the halt everywhere; returns the one lifted (None when there was none).

        Raises:
            FleetUnavailableError: the store is unreachable (the halt stays).
        """
        lifted = await self.store.clear_halt(account)
        lifted = lifted or self._unsynced_halt
        self._unsynced_halt = None
        return lifted

    async def close(self) -> None:
        """Stop the pending releases (each reservation's ``until`` ends it) and the store."""
        for task in list(self._ending):
            task.cancel()
        if self._store is not None:
            await self._store.close()
