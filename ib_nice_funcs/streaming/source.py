"""What the bar subscriptions need of the IB source: a small protocol.

:class:`~ib_nice_funcs.streaming.BarSubscriptions` is built by
:class:`ib_nice_funcs.sources.ib.IBSource`; typing it against ``IBSource``
(even under ``TYPE_CHECKING``) would close an import cycle, so it is typed
against :class:`BarSource`, which ``IBSource`` satisfies as it is.
"""

from __future__ import annotations

from collections.abc import Hashable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from ib_async import Contract

    from .._gateway import IBGateway
    from ..symbols import Instrument
    from ..timeframes import Booking, Chunk, PacingBudget, Timeframe

__all__ = ["BarSource"]


class BarSource(Protocol):
    """The IB source as its bar subscriptions see it (loop thread)."""

    gateway: IBGateway
    pacing: PacingBudget | Any

    async def fetch_plain(
        self, instrument: Instrument, contract: Contract, timeframe: Timeframe,
        start: datetime, end: datetime, what: str = "bars", deadline: float | None = None,
    ) -> tuple[pd.DataFrame, int]:
        """Bars of ``[start, end)`` by plain chunked requests, and how many were sent."""
        ...

    async def wait_for_slot(self, booking: Booking) -> None:
        """Sleep until a booked pacing slot."""
        ...

    @staticmethod
    def chunk_key(contract_key: Hashable, chunk: Chunk, timeframe: Timeframe) -> tuple:
        """A plain chunk request's pacing key."""
        ...

    def check_plan_fits(self, requests: list, deadline: float, what: str) -> None:
        """Refuse a plan IB's pacing would hold past ``deadline`` (PacingViolationError)."""
        ...
