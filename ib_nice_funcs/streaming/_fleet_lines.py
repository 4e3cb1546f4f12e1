"""Market-data lines shared with the fleet: one process streams, the others follow.

With a :class:`LineSharing` (``redis_url``: see :mod:`ib_nice_funcs.fleet.quotes`)
the processes of a fleet on one gateway hold one line per symbol between
them. :class:`FleetLines` does this client's part on its
:class:`~ib_nice_funcs.streaming._lines.LineTable`: it takes the lease of a
symbol before a line opens (else the line is *remote*: fed from the holder's
shared quote), publishes this client's ticks, renews its leases, follows the
others' quotes, takes over a line whose holder went, counts the fleet's
asks as repeats, and hands its lines back when the client closes.

Threading contract: loop thread, except :meth:`FleetLines.shared_quote`
(any thread: one Redis GET, nothing of the table touched).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Protocol

from ._line_plan import to_ask_fleet
from ._lines import Line, LineTable, LiveQuote

__all__ = ["FleetLines", "LineLimits", "LineSharing"]

log = logging.getLogger("ib_nice_funcs")


class LineSharing(Protocol):
    """What :class:`Tickers` asks of the fleet (``ib_nice_funcs.fleet.quotes.SharedQuotes``)."""

    def fresh(self, key: Any, stale_after: float) -> tuple[float, float] | None: ...
    def acquire(self, key: Any) -> bool: ...
    def release(self, key: Any) -> None: ...
    def renew(self, keys: Sequence[Any]) -> set[Any]: ...
    def publish(self, ticks: Sequence[tuple[Any, float, float]]) -> None: ...
    def follow(self, keys: Sequence[Any]) -> dict[Any, tuple[tuple[float, float] | None, bool]]: ...
    def wanted(self, key: Any) -> bool: ...
    def asked_before(self, keys: Sequence[Any], window: float) -> set[Any]: ...


class LineLimits(Protocol):
    """The limits :class:`FleetLines` reads of its client (:class:`Tickers` has them)."""

    max_lines: int
    stale_after: float


class FleetLines:
    """This client's part in the fleet's shared lines (loop thread, but :meth:`shared_quote`)."""

    def __init__(self, table: LineTable, limits: LineLimits) -> None:
        self.table = table
        self.limits = limits
        #: One line per symbol across the fleet's processes (None: this process alone).
        self.sharing: LineSharing | None = None
        self._watcher: asyncio.TimerHandle | None = None

    # -- any thread -------------------------------------------------------------

    def shared_quote(self, key: Hashable) -> LiveQuote | None:
        """The fresh tick another process of the fleet streams for ``key`` (one Redis GET)."""
        sharing = self.sharing
        if sharing is None:
            return None
        tick = sharing.fresh(key, self.limits.stale_after)
        if tick is None:
            return None
        price, epoch = tick
        return LiveQuote(price, time.monotonic() - max(0.0, time.time() - epoch), epoch)

    # -- loop thread --------------------------------------------------------------

    def asked_elsewhere(self, keys: Sequence[Hashable], asked: Mapping[Hashable, float],
                        now: float, window: float) -> set[Hashable]:
        """Of ``keys`` this process did not ask lately, those another process of the fleet did.

        A symbol any process of the fleet asked for within the repeat window
        is a repeat: it is streamed (one line for the fleet, the others
        follow it) instead of each process sending a snapshot of its own.
        """
        sharing = self.sharing
        if sharing is None:
            return set()
        new = to_ask_fleet(keys, asked, now, window)
        return sharing.asked_before(new, window) if new else set()

    def follows(self, line: Line) -> bool:
        """Take ``line``'s lease, or mark it remote and follow its holder (True: remote)."""
        sharing = self.sharing
        if sharing is None:
            return False
        self._arm_watch()
        if sharing.acquire(line.key):
            return False
        line.remote = True  # another process streams it: follow its quote
        self.follow([line])
        return True

    def released(self, line: Line) -> None:
        """``line`` stopped here: give its lease back to the fleet (if this process held it)."""
        if self.sharing is not None and not line.remote:
            self.sharing.release(line.key)

    def publish(self, ticks: Sequence[tuple[Hashable, float, float]]) -> None:
        """Share this client's new ``(key, price, epoch)`` ticks with the fleet."""
        if ticks and self.sharing is not None:
            self.sharing.publish(ticks)

    def wanted(self, line: Line) -> bool:
        """True if another process still reads ``line``, which this process streams."""
        return self.sharing is not None and not line.remote and self.sharing.wanted(line.key)

    def leave(self) -> None:
        """The client is closing: hand this process's lines to the fleet at once."""
        sharing, self.sharing = self.sharing, None
        if sharing is None:
            return
        for line in self.table.live.values():
            if not line.remote and line.req_id:
                sharing.release(line.key)
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        close = getattr(sharing, "close", None)
        if close is not None:
            close()

    def _arm_watch(self) -> None:
        if self._watcher is None and self.sharing is not None:
            from ..fleet.quotes import RENEW_S

            self._watcher = asyncio.get_running_loop().call_later(RENEW_S, self._watch)

    def _watch(self) -> None:
        """Renew our lines' leases, follow the others' quotes, take over lines nobody holds."""
        self._watcher = None
        sharing, table = self.sharing, self.table
        if sharing is None or not table.live:
            return
        ours = [line for line in table.live.values() if not line.remote and line.req_id]
        for key in sharing.renew([line.key for line in ours]):
            line = table.live[key]
            log.debug("another process streams %s now; following it", line.instrument.symbol)
            table.close(line)
            table.forget_ids(line)
            line.remote = True
        self.follow([line for line in table.live.values() if line.remote])
        self._arm_watch()

    def follow(self, lines: Sequence[Line]) -> None:
        """Feed remote ``lines`` from the shared quotes; open the lines nobody holds."""
        sharing, table = self.sharing, self.table
        ib = table.ib
        if sharing is None or not lines:
            return
        now, wall = time.monotonic(), time.time()
        stale_after = self.limits.stale_after
        states = sharing.follow([line.key for line in lines])
        for line in lines:
            quote, held = states.get(line.key, (None, False))
            if not held and ib is not None and ib.isConnected() and \
                    table.own < self.limits.max_lines and sharing.acquire(line.key):
                log.info("taking over the market-data line of %s", line.instrument.symbol)
                line.remote = False
                table.open(line, ib)
                continue
            if quote is None or (line.quote is not None and quote[1] <= line.quote.time):
                continue
            price, epoch = quote
            if wall - epoch <= stale_after:
                line.update(LiveQuote(price, now - max(0.0, wall - epoch), epoch))
