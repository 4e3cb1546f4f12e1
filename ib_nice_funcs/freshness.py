"""Where a value came from and how old it is: price quotes and frame provenance.

Every price or frame the package hands out can say which source answered,
when (UTC) the value was current, and whether it was read from a live
subscription or a cache rather than asked for just now. Frames carry it in
``df.attrs``; prices in a :class:`PriceQuote` (``Client.quote``).

``df.attrs`` keys:

* ``source``: the source that answered (``"ib"``, ``"yfinance"`` ...).
* ``fetched_at``: tz-aware UTC ``datetime`` the data was current at: when the
  answer arrived, or for a kept-up-to-date subscription the last moment the
  gateway was heard from.
* ``live``: True when served from a streaming (``keepUpToDate``) subscription.
* ``cached``: True when served from this client's short cache.

I/O-free; unit-tested directly.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["PriceQuote", "stamp_frame", "frame_age", "utc_from_epoch"]


def utc_from_epoch(epoch: float) -> datetime:
    """A tz-aware UTC datetime from epoch seconds."""
    return datetime.fromtimestamp(epoch, timezone.utc)


class PriceQuote(NamedTuple):
    """One price with its provenance.

    Attributes:
        price: the price.
        source: the source that answered.
        time: tz-aware UTC datetime the price was current at (the tick, or
            when the answer arrived).
        live: read from a streaming ticker (no message sent).
        cached: read from this client's price cache.
    """

    price: float
    source: str
    time: datetime
    live: bool = False
    cached: bool = False

    def age(self, now: datetime | None = None) -> float:
        """Seconds between :attr:`time` and ``now`` (default: the current UTC time)."""
        now = now or datetime.now(timezone.utc)
        return max(0.0, (now - self.time).total_seconds())


def stamp_frame(frame: pd.DataFrame, source: str, fetched_at: datetime | None = None, *,
                live: bool | None = None, cached: bool = False) -> pd.DataFrame:
    """Set the provenance attrs of ``frame`` in place and return it.

    ``fetched_at`` and ``live`` default to what the frame already says (a
    source may have set them), else to now and False.
    """
    attrs = frame.attrs
    attrs["source"] = source
    when = fetched_at or attrs.get("fetched_at") or datetime.now(timezone.utc)
    attrs["fetched_at"] = when
    attrs["live"] = bool(attrs.get("live", False) if live is None else live)
    attrs["cached"] = bool(cached)
    return frame


def frame_age(frame: pd.DataFrame, now: datetime | None = None) -> float | None:
    """Seconds since ``frame.attrs["fetched_at"]`` (None when the frame has no stamp)."""
    when = frame.attrs.get("fetched_at")
    if when is None:
        return None
    now = now or datetime.now(timezone.utc)
    return max(0.0, (now - when).total_seconds())
