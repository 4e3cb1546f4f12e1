"""LinkHealth: how current the data held from one gateway connection is.

A TCP connection can hang without closing (a half-open link, a frozen
gateway): the socket stays "connected" while nothing arrives. And TWS itself
can lose its link to IB's servers (error 1100) while our socket is fine.
Either way, live tickers, ``keepUpToDate`` bars, account values and caches
stop being current without anything failing. This module keeps the facts
that decide it (when we last heard from the gateway, whether IB's 1100 is in
force, a counter that moves whenever held data must not be trusted any
more) and the heartbeat's decision rule, I/O-free; the gateway feeds it.

Threading contract: written on the loop thread only; the read-only
properties may be read from any thread (plain attribute reads).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from .errors import CONNECTIVITY_RESTORED_DATA_KEPT, CONNECTIVITY_RESTORED_DATA_LOST

__all__ = ["LinkHealth", "heartbeat_step", "HeartbeatAction", "LinkNotice"]

HeartbeatAction = Literal["ok", "probe", "dead"]
LinkNotice = Literal["lost", "restored_data_lost", "restored_data_kept"]
#: IB's "connectivity between IB and TWS has been lost".
_IB_LINK_LOST = 1100
#: Held data is current while the gateway was heard from within this many intervals.
_CURRENT_INTERVALS = 2.0


def heartbeat_step(now: float, last_heard: float, probe_at: float | None,
                   interval: float, still_queued: bool = False
                   ) -> tuple[HeartbeatAction, float | None]:
    """One heartbeat tick (run every ``interval / 2`` s): what to do, and the new probe time.

    Silent for ``interval`` s: send a probe. A probe unanswered (nothing at
    all heard since it was sent) for ``interval`` s: the link is dead. So a
    hung link is replaced at most 2.5 intervals after its last message,
    while a healthy idle one costs one small round trip per interval.

    ``still_queued``: the connection's own throttle still holds messages,
    so the probe may not have left yet; its clock starts again (a gateway
    cannot answer what it never got, and replacing the connection would
    only queue every subscription again).
    """
    if probe_at is not None and last_heard >= probe_at:
        probe_at = None  # something came back: the link answers
    if probe_at is not None and still_queued:
        return "ok", now
    if probe_at is None:
        if now - last_heard >= interval:
            return "probe", now
        return "ok", None
    if now - probe_at >= interval:
        return "dead", probe_at
    return "ok", probe_at


class LinkHealth:
    """Facts about one gateway connection's liveness (see module doc).

    Attributes:
        interval: the heartbeat interval in seconds.
        epoch: moves on every disconnect, silence, 1100 and 1101; a value
            stored with an older epoch is not current.
        ib_link_lost: IB's 1100 is in force (until 1101 / 1102).
    """

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = float(interval)
        self._window = _CURRENT_INTERVALS * self.interval
        self.clock = clock
        self.connected = False
        self.ib_link_lost = False
        self.epoch = 0
        self.last_heard = clock()

    # -- loop thread --------------------------------------------------------

    def heard(self, *_: object) -> None:
        """Something arrived from the gateway (hooked to the socket's data event)."""
        self.last_heard = self.clock()

    def up(self) -> None:
        """A new connection finished its handshake."""
        self.connected = True
        self.ib_link_lost = False
        self.last_heard = self.clock()

    def down(self) -> None:
        """The connection closed, or was dropped as silent: nothing held is current."""
        self.connected = False
        self.epoch += 1

    def notice(self, code: int) -> LinkNotice | None:
        """Apply IB's connectivity code (1100, 1101, 1102); what it means, or None.

        Only 1100 starts the "not current" state: IB ends it with 1101 or
        1102. (2110, a TWS-to-server hiccup, has no such ending; live ticks
        are cleared on it by the tickers themselves.)
        """
        if code == _IB_LINK_LOST:
            self.ib_link_lost = True
            self.epoch += 1
            return "lost"
        if code in CONNECTIVITY_RESTORED_DATA_LOST:
            self.ib_link_lost = False
            self.epoch += 1
            return "restored_data_lost"
        if code in CONNECTIVITY_RESTORED_DATA_KEPT:
            self.ib_link_lost = False
            return "restored_data_kept"
        return None

    # -- any thread -----------------------------------------------------------

    @property
    def quiet_for(self) -> float:
        """Seconds since the last message from the gateway."""
        return max(0.0, self.clock() - self.last_heard)

    @property
    def current(self) -> bool:
        """Whether data held from this connection may be served as current."""
        # On the warm price path: plain attribute reads and one clock call.
        return (self.connected and not self.ib_link_lost
                and self.clock() - self.last_heard <= self._window)

    def why_not_current(self) -> str:
        """Words for an error message when :attr:`current` is False."""
        if not self.connected:
            return "the gateway connection is down (reconnecting in the background)"
        if self.ib_link_lost:
            return ("TWS / IB Gateway lost its connection to IB (error 1100); data is not "
                    "current until it is restored (1101 / 1102)")
        return (f"the gateway has sent nothing for {self.quiet_for:.0f} s (the connection may "
                "hang; it is probed and replaced if it stays silent)")

    def heard_wall(self) -> float:
        """UTC epoch seconds of the last message from the gateway."""
        return time.time() - self.quiet_for
