"""Which symbols get a market-data line and which line goes: pure functions.

The line policy of :class:`~ib_nice_funcs.streaming.Tickers` without its
I/O: a price request is split into answers from fresh ticks, symbols to
stream now (asked again within the repeat window, a free or evictable line
left, no recent error) and snapshots (:func:`plan_prices`); a full budget
gives up the least recently read line no subscription holds
(:func:`eviction_candidate`); lines nobody read for a while
(:func:`idle_lines`) and old asks (:func:`expired_asks`) are swept.

No I/O, no clock (``now`` is an argument), no state kept: callable from any
thread. The caller (the loop thread) applies the result.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from typing import Protocol, TypeVar

from ._lines import LiveQuote

__all__ = [
    "LineUse", "Named", "asked_lately", "eviction_candidate", "expired_asks", "free_lines",
    "has_free_line", "idle_lines", "plan_prices", "quote_is_fresh", "to_ask_fleet",
]


class LineUse(Protocol):
    """What the policy reads of a line (:class:`~ib_nice_funcs.streaming._lines.Line`)."""

    @property
    def key(self) -> Hashable: ...
    @property
    def pins(self) -> int: ...
    @property
    def remote(self) -> bool: ...
    @property
    def last_used(self) -> float: ...
    @property
    def quote(self) -> LiveQuote | None: ...


class Named(Protocol):
    """What the policy reads of an instrument (:class:`~ib_nice_funcs.symbols.Instrument`)."""

    @property
    def key(self) -> Hashable: ...
    @property
    def symbol(self) -> str: ...


L = TypeVar("L", bound=LineUse)
I = TypeVar("I", bound=Named)  # noqa: E741 - the instrument
C = TypeVar("C")


def quote_is_fresh(quote: LiveQuote | None, now: float, stale_after: float) -> bool:
    """True if ``quote`` is at most ``stale_after`` seconds old at monotonic ``now``."""
    return quote is not None and now - quote.at <= stale_after


def asked_lately(asked_at: float | None, now: float, window: float) -> bool:
    """True if a symbol last asked at ``asked_at`` (None: never) was asked within ``window``."""
    return asked_at is not None and now - asked_at <= window


def to_ask_fleet(keys: Iterable[Hashable], asked: Mapping[Hashable, float], now: float,
                 window: float) -> list[Hashable]:
    """Of ``keys``, those this process did not ask within ``window``: the fleet may have."""
    return [k for k in keys if not asked_lately(asked.get(k), now, window)]


def plan_prices(
    items: Sequence[tuple[I, C]], live: Mapping[Hashable, LineUse], *,
    asked: Mapping[Hashable, float], fleet_asked: Collection[Hashable],
    penalty: Mapping[Hashable, float], room: int, now: float, stale_after: float,
    repeat_window: float, link_current: bool,
) -> tuple[dict[str, float], list[tuple[I, C]], list[tuple[I, C]]]:
    """Split a price request: (answers from live ticks, items to stream now, snapshots).

    Args:
        items: ``(instrument, contract)`` pairs, in request order.
        live: the lines open now, by key (their ``quote`` is read).
        asked: monotonic time each key was last asked (before this request).
        fleet_asked: keys another process of the fleet asked within the window.
        penalty: monotonic time until which a key may not stream (IB refused it).
        room: lines free or evictable now.
        link_current: the connection is up and not in IB's 1100.

    A live symbol is answered from its tick if fresh and the link is current,
    else snapshotted (its line stays). Any other symbol streams if asked
    again within ``repeat_window`` (by this process, earlier in this request,
    or by the fleet), a line is left and no penalty holds; else a snapshot.
    """
    values: dict[str, float] = {}
    promote: list[tuple[I, C]] = []
    snap: list[tuple[I, C]] = []
    seen: set[Hashable] = set()
    for item in items:
        instrument = item[0]
        key = instrument.key
        line = live.get(key)
        if line is not None:
            quote = line.quote
            if quote is not None and link_current and quote_is_fresh(quote, now, stale_after):
                values[instrument.symbol] = quote.price
            else:
                snap.append(item)
            continue
        repeated = key in seen or asked_lately(asked.get(key), now, repeat_window) \
            or key in fleet_asked
        seen.add(key)
        if repeated and room > 0 and penalty.get(key, 0.0) <= now:
            promote.append(item)
            room -= 1
        else:
            snap.append(item)
    return values, promote, snap


def has_free_line(lines: Iterable[LineUse], max_lines: int) -> bool:
    """True if this client holds fewer than ``max_lines`` lines (followed ones cost none)."""
    return sum(1 for line in lines if not line.remote) < max_lines


def free_lines(lines: Iterable[LineUse], max_lines: int) -> int:
    """Lines a request may take: unused ones plus those no subscription holds."""
    own = evictable = 0
    for line in lines:
        if not line.remote:
            own += 1
            evictable += line.pins <= 0
    return max_lines - own + evictable


def eviction_candidate(lines: Iterable[L]) -> L | None:
    """The least recently read line of this client that no subscription holds; None if none."""
    unpinned = [line for line in lines if line.pins <= 0 and not line.remote]
    return min(unpinned, key=lambda line: line.last_used) if unpinned else None


def idle_lines(lines: Iterable[L], now: float, idle_after: float) -> list[L]:
    """Lines no subscription holds and no price call read for ``idle_after`` seconds."""
    return [line for line in lines
            if line.pins <= 0 and now - max(line.last_used, 0.0) > idle_after]


def expired_asks(asked: Mapping[Hashable, float], now: float, window: float) -> list[Hashable]:
    """Keys last asked more than ``window`` seconds before ``now``: no longer repeats."""
    return [key for key, at in asked.items() if now - at > window]
